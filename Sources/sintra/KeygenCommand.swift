import ArgumentParser
import Foundation
import SintraCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// `sintra keygen`: deals the keys of a new cluster into a folder.
struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Generate the keys of a new cluster: cluster.json (public) and one replica-I.secret per replica.",
        discussion: """
            cluster.json lists every replica's address and Ed25519 public key, and for the threshold coin \
            and threshold encryption keys the group public key, every replica's verification key and the \
            Feldman commitments (ristretto255 elements as hex of their RFC 9496 encoding). Each \
            replica-I.secret holds that replica's secrets and is created with mode 0600: copy it to that \
            replica's host only.
            """)

    @Option(name: .long, help: "Number of replicas n.")
    var replicas: Int = 4

    @Option(name: .long, help: "Number of Byzantine replicas t to tolerate (default: the largest t with n ≥ 3t + 1).")
    var faulty: Int?

    @Option(name: .long, help: "Folder to write the key files into (created if missing).")
    var out: String

    @Option(name: .long, help: "Host name or address of the replicas in cluster.json.")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "Port of replica 1; replica i listens on base-port + i − 1.")
    var basePort: Int = 7100

    @Flag(name: .long, help: "Overwrite existing key files.")
    var force = false

    func validate() throws {
        guard replicas >= 1 else { throw ValidationError("--replicas must be at least 1") }
        let faulty = self.faulty ?? (replicas - 1) / 3
        do {
            try KeyDealer.validate(replicas: replicas, faulty: faulty)
        } catch {
            throw ValidationError(error.description)
        }
        guard basePort >= 1, basePort + replicas - 1 <= 65535 else {
            throw ValidationError("--base-port \(basePort) leaves no room for \(replicas) ports below 65536")
        }
    }

    func run() throws {
        let faulty = self.faulty ?? (replicas - 1) / 3
        let written = try KeyFolder.write(
            keys: try KeyDealer.deal(replicas: replicas, faulty: faulty), to: out, host: host, basePort: basePort,
            overwrite: force)
        print("Dealt keys for n = \(replicas) replicas tolerating t = \(faulty) Byzantine (thresholds t + 1 = \(faulty + 1)).")
        for path in written {
            print("  wrote \(path)")
        }
        print("Give replica i only its own replica-i.secret; cluster.json is public.")
    }
}

/// Writing and reading a folder of key files.
enum KeyFolder {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func clusterPath(_ folder: String) -> String { folder + "/cluster.json" }
    static func secretPath(_ folder: String, index: Int) -> String { folder + "/replica-\(index).secret" }

    /// Writes cluster.json (0644) and replica-I.secret (0600) files; refuses to overwrite unless asked.
    @discardableResult
    static func write(keys: DealtKeys, to folder: String, host: String, basePort: Int, overwrite: Bool) throws
        -> [String]
    {
        try FileManager.default.createDirectory(
            atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let configuration = ClusterConfiguration(keys: keys, host: host, basePort: basePort)
        var paths = [clusterPath(folder)]
        paths += keys.secrets.map { secretPath(folder, index: $0.index) }
        if !overwrite {
            for path in paths where FileManager.default.fileExists(atPath: path) {
                throw Failure(description: "\(path) already exists; pass --force to replace the cluster's keys")
            }
        }
        try writeFile(configuration.json(), to: paths[0], mode: 0o644)
        for secrets in keys.secrets {
            let file = ReplicaSecretFile(clusterIdentifier: keys.clusterIdentifier, secrets: secrets)
            try writeFile(file.json(), to: secretPath(folder, index: secrets.index), mode: 0o600)
        }
        return paths
    }

    /// Creates the file with `mode` from the start (no window in which a secret is world-readable).
    static func writeFile(_ data: Data, to path: String, mode: mode_t) throws {
        unlink(path)
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)
        guard descriptor >= 0 else {
            throw Failure(description: "cannot create \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        // The umask may have cleared bits of `mode`; set it exactly.
        fchmod(descriptor, mode)
        let written = data.withUnsafeBytes { buffer in
            systemWrite(descriptor, buffer.baseAddress, buffer.count)
        }
        guard written == data.count, fsync(descriptor) == 0 else {
            throw Failure(description: "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Loads and validates cluster.json.
    static func loadCluster(_ path: String) throws -> ClusterConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "cannot read \(path)")
        }
        return try ClusterConfiguration(json: data)
    }

    /// Loads and validates a replica's secret file against its cluster.
    static func loadSecret(_ path: String, cluster: ClusterConfiguration) throws -> ReplicaSecretFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Failure(description: "cannot read \(path)")
        }
        return try ReplicaSecretFile(json: data, cluster: cluster)
    }
}

/// `sintra check-keys`: validates a cluster's key files.
struct CheckKeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-keys",
        abstract: "Validate cluster.json and, if given, replica secret files against it.")

    @Option(name: .long, help: "Path of cluster.json.")
    var config: String

    @Option(name: .long, help: "Path of a replica-I.secret file (repeatable).")
    var secret: [String] = []

    func run() throws {
        let cluster = try KeyFolder.loadCluster(config)
        print("\(config): valid cluster of n = \(cluster.replicas), t = \(cluster.faulty)")
        for path in secret {
            let file = try KeyFolder.loadSecret(path, cluster: cluster)
            print("\(path): valid secrets of replica \(file.secrets.index)")
        }
    }
}

/// POSIX write(2), named apart from the many Swift `write` methods.
private func systemWrite(_ descriptor: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int {
    #if canImport(Glibc)
        return Glibc.write(descriptor, buffer, count)
    #elseif canImport(Musl)
        return Musl.write(descriptor, buffer, count)
    #else
        return Darwin.write(descriptor, buffer, count)
    #endif
}
