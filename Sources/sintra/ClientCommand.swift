import ArgumentParser
import Foundation
import SintraClient
import SintraCrypto
import SintraReplica

/// `sintra client`: one SintraKV operation against a cluster, printed once t + 1 replicas agree.
struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Run one operation on a SintraKV cluster: put K V | get K | delete K | cas K OLD NEW | scan FROM TO.",
        discussion: """
            The request goes to every replica; the result is printed once t + 1 replicas sent the same one. \
            For cas, OLD may be '-' for "the key must be absent". A request the replicas refuse for a \
            retryable reason (queue-full, unavailable, overloaded) is sent again after a growing, jittered \
            pause until the timeout (unless --no-retry). If the replicas refuse the request (t + 1 for one \
            reason, or too many for a result to come) or too few answer in time, the reason is printed and \
            the exit status is 75 (EX_TEMPFAIL) when trying again may succeed (queue-full, unavailable, \
            overloaded, a timeout), 1 when it will not (invalid-signature, invalid-public-key, too-large, \
            malformed, stale).
            """)

    @Option(name: .long, help: "Path of cluster.json.")
    var config: String

    @Option(
        name: .long,
        help: "Client key file: loaded if it exists, else created with mode 0600. Default: a fresh key per run.")
    var key: String?

    @Option(name: .long, help: "Seconds to wait for t + 1 matching replies, retries included.")
    var timeout: Double = 5

    @Flag(name: .long, help: "Fail at once on a retryable refusal instead of sending the request again.")
    var noRetry = false

    @Argument(help: "The operation and its arguments.")
    var words: [String]

    func parseOperation() throws -> KeyValueStore.Operation {
        let bytes = { (text: String) in Array(text.utf8) }
        switch (words.first, words.count) {
        case ("put", 3): return .put(key: bytes(words[1]), value: bytes(words[2]))
        case ("get", 2): return .get(key: bytes(words[1]))
        case ("delete", 2): return .delete(key: bytes(words[1]))
        case ("cas", 4):
            return .compareAndSwap(
                key: bytes(words[1]), expected: words[2] == "-" ? nil : bytes(words[2]), new: bytes(words[3]))
        case ("scan", 3): return .scan(from: bytes(words[1]), to: bytes(words[2]), limit: KeyValueStore.scanCountMax)
        default:
            throw ValidationError("expected put K V | get K | delete K | cas K OLD NEW | scan FROM TO")
        }
    }

    func validate() throws {
        _ = try parseOperation()
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() async throws {
        let cluster = try KeyFolder.loadCluster(config)
        let clientKey = try key.map(Self.loadOrCreateKey) ?? ClientKey.generate()
        let client = try SintraClient(
            configuration: cluster, key: clientKey, timeoutSeconds: timeout, retry: noRetry ? .never : .default)
        do {
            let result = try await client.execute(try parseOperation())
            await client.close()
            print(Self.describe(result))
        } catch let failure as SintraClient.Failure {
            await client.close()
            FileHandle.standardError.write(Data("Error: \(failure)\n".utf8))
            throw ExitCode(Self.exitStatus(for: failure))
        }
    }

    /// EX_TEMPFAIL (sysexits.h) for a failure that a later try may not have, 1 for one it will.
    static func exitStatus(for failure: SintraClient.Failure) -> Int32 { failure.isRetryable ? 75 : 1 }

    static let keyFileHeader = "sintra-client-key-v1"

    /// Loads the client key at `path`, or creates one there (mode 0600) if there is no file.
    ///
    /// The key is the client's identity: replicas derive the client identifier from its public key and
    /// deduplicate requests by it, so reusing a key file across runs keeps one identity (sequence numbers
    /// then continue from the replicas' view, see `SintraClient`).
    static func loadOrCreateKey(_ path: String) throws -> ClientKey {
        if let data = FileManager.default.contents(atPath: path) {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
                throw ClientFailure(
                    description: "\(path) is readable by others (mode \(String(mode, radix: 8))); chmod 600 it")
            }
            let lines = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            guard lines.count == 2, lines[0] == keyFileHeader,
                let seed = try? Hex.decode(String(lines[1]), context: "client key"), seed.count == 32
            else {
                throw ClientFailure(description: "\(path) is not a sintra client key file")
            }
            return try ClientKey(seed: seed)
        }
        let key = ClientKey.generate()
        let text = keyFileHeader + "\n" + Hex.encode(key.seed) + "\n"
        try KeyFolder.writeFile(Data(text.utf8), to: path, mode: 0o600)
        return key
    }

    static func describe(_ result: KeyValueStore.Result) -> String {
        let text = { (bytes: [UInt8]) in String(decoding: bytes, as: UTF8.self) }
        switch result {
        case .ok: return "ok"
        case .value(let value): return text(value)
        case .notFound: return "(not found)"
        case .conflict(let current): return "conflict: current value \(current.map(text) ?? "(absent)")"
        case .entries(let entries):
            return entries.isEmpty ? "(no entries)" : entries.map { "\(text($0.key)) = \(text($0.value))" }.joined(separator: "\n")
        case .invalid(let reason): return "invalid request: \(reason)"
        case .batch(let results): return results.map(describe).joined(separator: "\n")
        }
    }
}

struct ClientFailure: Error, CustomStringConvertible {
    let description: String
}
