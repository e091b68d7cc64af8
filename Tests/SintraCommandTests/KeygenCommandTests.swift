import Foundation
import SintraCrypto
import Testing

@testable import sintra

/// `sintra keygen` writes loadable files with the right permissions and refuses bad shapes.
@Suite struct KeygenCommandTests {
    private func temporaryFolder() -> String {
        NSTemporaryDirectory() + "sintra-keygen-\(UUID().uuidString)"
    }

    private func mode(_ path: String) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return try #require(attributes[.posixPermissions] as? Int)
    }

    @Test func writesClusterAndSecretFiles() throws {
        let folder = temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var command = try KeygenCommand.parse(["--replicas", "7", "--out", folder, "--base-port", "9100"])
        try command.validate()
        try command.run()
        let cluster = try KeyFolder.loadCluster(KeyFolder.clusterPath(folder))
        #expect(cluster.replicas == 7 && cluster.faulty == 2)
        #expect(cluster.members.last?.port == 9106)
        #expect(try mode(KeyFolder.clusterPath(folder)) == 0o644)
        for index in 1...7 {
            let path = KeyFolder.secretPath(folder, index: index)
            #expect(try mode(path) == 0o600)
            let secret = try KeyFolder.loadSecret(path, cluster: cluster)
            #expect(secret.secrets.index == index)
        }
        // A second run does not overwrite keys unless forced.
        command = try KeygenCommand.parse(["--replicas", "4", "--out", folder])
        #expect(throws: KeyFolder.Failure.self) { try command.run() }
        command = try KeygenCommand.parse(["--replicas", "4", "--out", folder, "--force"])
        try command.run()
        #expect(try KeyFolder.loadCluster(KeyFolder.clusterPath(folder)).replicas == 4)
    }

    @Test func refusesTooFewReplicasWithAClearMessage() throws {
        do {
            let command = try KeygenCommand.parse(["--replicas", "6", "--faulty", "2", "--out", "/tmp/unused"])
            try command.validate()
            Issue.record("n = 6, t = 2 was accepted")
        } catch {
            #expect("\(error)".contains("n ≥ 3t + 1"))
        }
    }
}
