import ArgumentParser
import Foundation
import SintraClient
import SintraCrypto
import SintraNetwork
import SintraReplica

/// `sintra status`: each replica's reachability, round, executed requests and state digest.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each replica of a cluster: reachable or not, round, requests executed, state digest.",
        discussion: """
            Asks every replica over its client port (TLS, the replica's key pinned; a status query needs no \
            client key). Exits with a failure if fewer than n - t replicas answer: then the cluster cannot \
            order requests.
            """)

    @Option(name: .long, help: "Path of cluster.json.")
    var config: String

    @Option(name: .long, help: "Seconds to wait for each replica.")
    var timeout: Double = 3

    func validate() throws {
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    func run() async throws {
        let cluster = try KeyFolder.loadCluster(config)
        let endpoints = cluster.members.map {
            SintraClient.Endpoint(
                member: $0.index, host: $0.host, port: ClientPorts.port(of: $0), identityKey: $0.identityKey)
        }
        let answers = await StatusProbe.query(endpoints, timeoutSeconds: timeout)
        print(Self.table(answers, cluster: cluster))
        let reachable = answers.filter { $0.status != nil }.count
        let needed = cluster.replicas - cluster.faulty
        guard reachable >= needed else {
            throw ClientFailure(
                description: "only \(reachable) of \(cluster.replicas) replicas reachable; \(needed) (n - t) needed")
        }
    }

    /// The table `run` prints: one line per replica, then how many answered.
    static func table(_ answers: [StatusProbe.Answer], cluster: ClusterConfiguration) -> String {
        func pad(_ text: String, _ width: Int) -> String {
            text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
        }
        var lines = [
            pad("replica", 9) + pad("address", 22) + pad("reachable", 11) + pad("round", 10) + pad("executed", 12)
                + "state digest"
        ]
        for answer in answers {
            let member = cluster.members[answer.member - 1]
            let address = "\(member.host):\(ClientPorts.port(of: member))"
            if let status = answer.status {
                lines.append(
                    pad("\(answer.member)", 9) + pad(address, 22) + pad("yes", 11) + pad("\(status.round)", 10)
                        + pad("\(status.executedCount)", 12) + Hex.encode(status.stateDigest.prefix(8)))
            } else {
                lines.append(pad("\(answer.member)", 9) + pad(address, 22) + "no (\(answer.failure ?? "no answer"))")
            }
        }
        let reachable = answers.filter { $0.status != nil }.count
        let quorum = cluster.replicas - cluster.faulty
        lines.append("\(reachable) of \(cluster.replicas) replicas reachable (n - t = \(quorum))")
        return lines.joined(separator: "\n")
    }
}
