import Foundation
import SintraClient
import SintraCrypto
import SintraNetwork
import SintraReplica

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A cluster of real `sintra replica` processes on loopback: keys from `sintra keygen`, free ports, each
/// replica's log in its own file (printed by `logs` when a test fails).
final class ProcessCluster: @unchecked Sendable {
    let folder: String
    let configuration: ClusterConfiguration
    let binary: String
    /// The metrics port of each replica.
    let metricsPorts: [Int]
    private var processes: [Int: Process] = [:]
    /// Signalled by each replica process's termination handler (`waitForExit`): Foundation's
    /// `Process.waitUntilExit` spins a core on Linux while the process exits, CPU the other replicas need.
    private var exits: [ObjectIdentifier: DispatchSemaphore] = [:]
    /// Arguments added to every `sintra replica` this cluster starts (e.g. `--snapshot-interval`).
    var replicaArguments: [String] = []

    /// The debug `sintra` binary: next to the test bundle in the build folder.
    static func sintraBinary() throws -> String {
        if let path = ProcessInfo.processInfo.environment["SINTRA_BINARY"] { return path }
        var candidates = [URL]()
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        candidates.append(executable.deletingLastPathComponent())
        for bundle in Bundle.allBundles { candidates.append(bundle.bundleURL.deletingLastPathComponent()) }
        for folder in candidates {
            var url = folder
            // Up from inside an .xctest bundle (macOS: Contents/MacOS).
            for _ in 0..<4 {
                let binary = url.appendingPathComponent("sintra").path
                if FileManager.default.isExecutableFile(atPath: binary) { return binary }
                url.deleteLastPathComponent()
            }
        }
        throw HarnessError("no sintra binary next to the test bundle (\(executable.path)); set SINTRA_BINARY")
    }

    /// Runs `sintra keygen` for n replicas on free ports into a temporary folder.
    init(replicas: Int, faulty: Int) throws {
        binary = try Self.sintraBinary()
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("sintra-it-\(UUID().uuidString)").path
        guard let base = LoopbackPorts.findBase(replicas: replicas) else { throw HarnessError("no free ports") }
        metricsPorts = (1...replicas).map { LoopbackPorts.metricsPort(base: base, index: $0) }
        let keygen = try Self.run(
            binary,
            ["keygen", "--out", folder, "--replicas", "\(replicas)", "--faulty", "\(faulty)", "--base-port",
             "\(base)"])
        guard keygen.status == 0 else { throw HarnessError("sintra keygen failed: \(keygen.output)") }
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/cluster.json"))
        configuration = try ClusterConfiguration(json: data)
    }

    var configPath: String { folder + "/cluster.json" }

    /// The arguments of `sintra replica` for replica `id`.
    func replicaCommand(_ id: Int, extra: [String] = []) -> [String] {
        [
            "replica", "--config", configPath, "--id", "\(id)", "--secret", folder + "/replica-\(id).secret",
            "--metrics-port", "\(metricsPorts[id - 1])", "--log-level",
            ProcessInfo.processInfo.environment["SINTRA_TEST_LOG_LEVEL"] ?? "notice",
        ] + replicaArguments + extra
    }

    /// Starts replica `id` as a process, with `extra` arguments.
    func start(_ id: Int, extra: [String] = []) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = replicaCommand(id, extra: extra)
        let log = folder + "/replica-\(id).log"
        if !FileManager.default.fileExists(atPath: log) {
            _ = FileManager.default.createFile(atPath: log, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        let exit = DispatchSemaphore(value: 0)
        process.terminationHandler = { _ in exit.signal() }
        try process.run()
        exits[ObjectIdentifier(process)] = exit
        processes[id] = process
    }

    func startAll() throws {
        for member in configuration.members { try start(member.index) }
    }

    /// `kill -9`: no shutdown, no flushing.
    func kill(_ id: Int) {
        guard let process = processes.removeValue(forKey: id) else { return }
        posixKill(process.processIdentifier, SIGKILL)
        waitForExit(process)
    }

    /// SIGTERM and wait: the replica shuts down cleanly (its store's WAL folded into the file).
    func terminate(_ id: Int) {
        guard let process = processes.removeValue(forKey: id) else { return }
        process.terminate()
        waitForExit(process)
    }

    private func waitForExit(_ process: Process) {
        if let exit = exits.removeValue(forKey: ObjectIdentifier(process)) {
            exit.wait()
        } else {
            process.waitUntilExit()
        }
    }

    /// Stops every replica and removes the folder.
    func stop() {
        for id in processes.keys.sorted() {
            if let process = processes[id] {
                process.terminate()
                waitForExit(process)
            }
        }
        processes = [:]
        // SINTRA_TEST_KEEP_FOLDERS=1 keeps keys, stores and logs for a post-mortem.
        if ProcessInfo.processInfo.environment["SINTRA_TEST_KEEP_FOLDERS"] == nil {
            try? FileManager.default.removeItem(atPath: folder)
        }
    }

    var endpoints: [SintraClient.Endpoint] {
        configuration.members.map {
            SintraClient.Endpoint(
                member: $0.index, host: $0.host, port: ClientPorts.port(of: $0), identityKey: $0.identityKey)
        }
    }

    /// Waits until the replicas `ids` answer status queries, for `seconds` but at least 10 minutes: in a
    /// whole `swift test` run the simulation suites hold the cooperative threads for minutes on a loaded
    /// 2-core machine, and this test's own task (not the replicas) is what starves meanwhile; a replica that
    /// never serves still fails the test, only later.
    func waitUntilServing(_ ids: [Int], within seconds: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(max(seconds, 600))
        while Date() < deadline {
            // A loaded machine (a whole test run starts several clusters at once) can take seconds per TLS
            // handshake of a debug build: a short timeout would never see the replicas serving.
            let answers = await StatusProbe.query(endpoints.filter { ids.contains($0.member) }, timeoutSeconds: 10)
            if answers.allSatisfy({ $0.status != nil }) { return true }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return false
    }

    /// The last lines of every replica's log, for failure messages.
    func logs() -> String {
        configuration.members.map { member in
            let text = (try? String(contentsOfFile: folder + "/replica-\(member.index).log", encoding: .utf8)) ?? ""
            return "--- replica \(member.index)\n" + text.split(separator: "\n").suffix(15).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    /// Runs the binary to completion; returns its exit status and combined output.
    static func run(_ binary: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func sintra(_ arguments: [String]) async throws -> (status: Int32, output: String) {
        let binary = self.binary
        return try await Task.detached { try Self.run(binary, arguments) }.value
    }
}

private func posixKill(_ process: pid_t, _ signal: Int32) { _ = kill(process, signal) }
private func posixClose(_ descriptor: Int32) { _ = close(descriptor) }
private func posixSend(_ descriptor: Int32, _ bytes: UnsafeRawPointer?, _ count: Int) -> Int {
    send(descriptor, bytes, count, Int32(MSG_NOSIGNAL))
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A blocking loopback TCP connection, for plain HTTP scrapes and garbage bytes.
struct RawConnection {
    let descriptor: Int32

    init(port: Int) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            posixClose(descriptor)
            throw HarnessError("cannot connect to 127.0.0.1:\(port)")
        }
    }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { posixSend(descriptor, $0.baseAddress, $0.count) }
    }

    /// Reads until the peer closes (true) or the 30-second receive timeout passes (false).
    func readUntilClosed() -> (closed: Bool, bytes: [UInt8]) {
        var received = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if count > 0 {
                received += chunk[0..<count]
            } else {
                // 0: orderly close; an error other than a timeout (a reset) is a close too.
                return (count == 0 || (errno != EAGAIN && errno != EWOULDBLOCK), received)
            }
        }
    }

    func close() { posixClose(descriptor) }
}

/// `GET /metrics` from a replica's metrics port: the value of each sample line, by its name and labels.
func scrapeMetrics(port: Int) async throws -> [String: Double] {
    try await Task.detached {
        let connection = try RawConnection(port: port)
        defer { connection.close() }
        connection.send(Array("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
        let response = String(decoding: connection.readUntilClosed().bytes, as: UTF8.self)
        guard response.hasPrefix("HTTP/1.1 200") else { throw HarnessError("scrape failed: \(response.prefix(200))") }
        var samples = [String: Double]()
        let body = response.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let value = Double(parts[1]) { samples[String(parts[0])] = value }
        }
        return samples
    }.value
}

/// Scrapes until `condition` holds or `seconds` pass; returns the last scrape.
func scrapeMetrics(port: Int, within seconds: Double, until condition: ([String: Double]) -> Bool) async throws
    -> [String: Double]
{
    let deadline = Date().addingTimeInterval(seconds)
    var samples = try await scrapeMetrics(port: port)
    while !condition(samples), Date() < deadline {
        try await Task.sleep(for: .milliseconds(100))
        samples = try await scrapeMetrics(port: port)
    }
    return samples
}
