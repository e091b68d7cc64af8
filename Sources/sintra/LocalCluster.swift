import Foundation
import SintraClient
import SintraCrypto
import SintraNetwork
import SintraReplica

/// A SintraKV cluster of `sintra replica` processes on loopback, with freshly dealt keys in a temporary
/// folder: what `sintra demo` and `sintra bench` run against.
///
/// Every replica is this executable started again with `replica`; it logs to replica-I.log in the folder and
/// writes its statistics to replica-I.stats there (`ReplicaCommand --stats-file`).
final class LocalCluster {
    let replicas: Int
    let faulty: Int
    let folder: String
    let basePort: Int
    let configuration: ClusterConfiguration
    private(set) var processes: [Process] = []
    /// One semaphore per process, signalled by its termination handler: `waitForExit` waits on it.
    /// Foundation's `Process.waitUntilExit` spins the run loop on Linux, a whole core for as long as the
    /// process takes to exit.
    private var exits: [ObjectIdentifier: DispatchSemaphore] = [:]
    let inMemory: Bool
    private let logLevel: String
    /// Further arguments for every replica process.
    private let replicaArguments: [String]
    /// An environment variable with a command put before every replica's (`{id}` is its index), to run the
    /// replicas under a profiler. Signals, CPU and memory figures go to the replica process itself
    /// (`replicaProcessIdentifier`).
    static let wrapperVariable = "SINTRA_REPLICA_WRAPPER"
    private let wrapper: String? = ProcessInfo.processInfo.environment[LocalCluster.wrapperVariable].flatMap {
        $0.isEmpty ? nil : $0
    }
    private var wrapped: Bool { wrapper != nil }
    /// This executable, which every replica runs.
    private let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        ?? CommandLine.arguments[0]

    /// Deals keys for `replicas` replicas and starts their processes; call `stop()` when done.
    /// `inMemory` runs the replicas without durable state (`sintra replica --in-memory`); otherwise each keeps
    /// its SQLite store in replica-I.data in the folder.
    init(
        replicas: Int, label: String, inMemory: Bool = false, logLevel: String = "warning", replicaArguments: [String] = []
    ) throws {
        self.replicas = replicas
        faulty = (replicas - 1) / 3
        folder = NSTemporaryDirectory() + "sintra-\(label)-\(UInt32.random(in: 0...UInt32.max))"
        guard let base = LoopbackPorts.findBase(replicas: replicas) else {
            throw ClientFailure(description: "no free loopback ports for \(replicas) replicas")
        }
        basePort = base
        let keys = try KeyDealer.deal(replicas: replicas, faulty: faulty)
        try KeyFolder.write(keys: keys, to: folder, host: "127.0.0.1", basePort: basePort, overwrite: false)
        configuration = try KeyFolder.loadCluster(KeyFolder.clusterPath(folder))
        self.inMemory = inMemory
        self.logLevel = logLevel
        self.replicaArguments = replicaArguments
        for index in 1...replicas {
            do {
                processes.append(try launch(index))
            } catch {
                stop()
                throw error
            }
        }
    }

    /// Starts replica `index` (1…n) as a new process of this executable, logging to replica-I.log (appended).
    private func launch(_ index: Int) throws -> Process {
        let process = Process()
        let arguments = [
            "replica", "--config", KeyFolder.clusterPath(folder), "--id", "\(index)",
            "--secret", KeyFolder.secretPath(folder, index: index), "--log-level", logLevel,
            "--stats-file", statisticsPath(index),
        ] + (inMemory ? ["--in-memory"] : []) + replicaArguments
        if let wrapper {
            // For profiling: e.g. SINTRA_REPLICA_WRAPPER='perf record -g -o /tmp/replica-{id}.data --'.
            let prefix = wrapper.replacingOccurrences(of: "{id}", with: "\(index)")
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "exec \(prefix) \"$0\" \"$@\"", executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        let logPath = folder + "/replica-\(index).log"
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = FileHandle(forWritingAtPath: logPath)
        _ = try? log?.seekToEnd()
        process.standardError = log
        process.standardOutput = FileHandle.nullDevice
        let exit = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exit.signal() }
        exits[ObjectIdentifier(process)] = exit
        do {
            try process.run()
        } catch {
            exits[ObjectIdentifier(process)] = nil
            throw error
        }
        return process
    }

    /// Starts replica `index` again after `kill`: a durable replica resumes from its data folder
    /// (replica-I.data) and catches up with the others.
    func restart(_ index: Int) throws {
        let old = processes[index - 1]
        if old.isRunning { _ = Foundation.kill(replicaProcessIdentifier(index), SIGKILL) }
        waitForExit(old)
        processes[index - 1] = try launch(index)
    }

    /// Where replica `index` writes its statistics.
    func statisticsPath(_ index: Int) -> String { folder + "/replica-\(index).stats" }

    /// Waits until one write is answered by t + 1 replicas (connections and the first round stand).
    func waitUntilServing(seconds: Double = 30) async throws {
        let client = try SintraClient(configuration: configuration, timeoutSeconds: 2)
        defer { Task { await client.close() } }
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if (try? await client.execute(.put(key: Array("warm-up".utf8), value: []))) != nil { return }
        }
        throw ClientFailure(description: "the local cluster did not start serving within \(Int(seconds)) s")
    }

    /// Waits until `process` has exited, without spinning (`exits`).
    private func waitForExit(_ process: Process) {
        if let exit = exits.removeValue(forKey: ObjectIdentifier(process)) {
            exit.wait()
        } else {
            process.waitUntilExit()
        }
    }

    /// Sends SIGKILL to replica `index` (1…n).
    func kill(_ index: Int) {
        _ = Foundation.kill(replicaProcessIdentifier(index), SIGKILL)
    }

    /// The process id of replica `index` itself: the launched process, or under `SINTRA_REPLICA_WRAPPER` the
    /// descendant of the wrapper that runs this executable (perf record forks it). Signals go to it, not to
    /// the wrapper (perf record ignores SIGTERM while its workload runs, so the cluster never stopped), and
    /// CPU and memory are read from it.
    func replicaProcessIdentifier(_ index: Int) -> Int32 {
        let launched = processes[index - 1].processIdentifier
        guard wrapped else { return launched }
        var current = launched
        for _ in 0..<4 {
            if Self.commandLine(of: current).first == executable { return current }
            let children = (try? String(contentsOfFile: "/proc/\(current)/task/\(current)/children", encoding: .utf8))?
                .split(separator: " ").compactMap { Int32($0) } ?? []
            guard let child = children.first else { break }
            current = child
        }
        return launched
    }

    private static func commandLine(of processIdentifier: Int32) -> [String] {
        guard let data = FileManager.default.contents(atPath: "/proc/\(processIdentifier)/cmdline") else { return [] }
        return data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// User plus system CPU seconds replica `index` has used so far (Linux /proc), nil where unavailable.
    func cpuSeconds(_ index: Int) -> Double? {
        ProcessCPU.seconds(processIdentifier: replicaProcessIdentifier(index))
    }

    /// Resident memory (VmRSS) of replica `index` from /proc, nil where unavailable.
    func residentBytes(_ index: Int) -> Int? {
        guard let text = try? String(
            contentsOfFile: "/proc/\(replicaProcessIdentifier(index))/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return nil }
        // "VmRSS:     123456 kB"
        let fields = line.split(separator: " ")
        guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
        return kilobytes * 1024
    }

    /// Bytes of the files in replica `index`'s data folder (replica-I.data) and its subfolders (the
    /// protocol journal's segments), nil if it has none.
    func dataBytes(_ index: Int) -> Int? {
        let path = folder + "/replica-\(index).data"
        guard let files = FileManager.default.enumerator(atPath: path) else { return nil }
        var total = 0
        for case let name as String in files {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path + "/" + name)
            if attributes?[.type] as? FileAttributeType == .typeRegular {
                total += (attributes?[.size] as? NSNumber)?.intValue ?? 0
            }
        }
        return total
    }

    /// The statistics replica `index` last wrote, nil if it wrote none yet.
    func statistics(_ index: Int) -> ReplicaStatisticsFile? {
        guard let data = FileManager.default.contents(atPath: statisticsPath(index)) else { return nil }
        return try? JSONDecoder().decode(ReplicaStatisticsFile.self, from: data)
    }

    /// Stops the replicas (SIGTERM, so they write their statistics and close cleanly) and removes the folder
    /// unless asked not to (a later `stop()` removes it).
    func stop(removingFolder: Bool = true) {
        for (offset, process) in processes.enumerated() where process.isRunning {
            _ = Foundation.kill(replicaProcessIdentifier(offset + 1), SIGTERM)
        }
        for process in processes { waitForExit(process) }
        processes = []
        if removingFolder { try? FileManager.default.removeItem(atPath: folder) }
    }
}

/// CPU time of a process from /proc/PID/stat: fields 14 and 15 (utime, stime) in clock ticks.
enum ProcessCPU {
    static func seconds(processIdentifier: Int32) -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(processIdentifier)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // The command name (field 2) is in parentheses and may hold spaces; fields 3… follow the last ')'.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (user + system) / (ticks > 0 ? ticks : 100)
    }
}
