import ArgumentParser

/// The `sintra` command: keys, demo, and (as the project grows) replicas, clients, benchmarks and simulation.
@main
struct SintraCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sintra",
        abstract: "Intrusion-tolerant replication: n replicas, up to t < n/3 of them Byzantine, no timing assumptions.",
        subcommands: [
            KeygenCommand.self, ReplicaCommand.self, ClientCommand.self, DemoCommand.self, BenchCommand.self,
            CryptoDemoCommand.self, CheckKeysCommand.self, StatusCommand.self,
            SimCommand.self,
        ]
    )
}
