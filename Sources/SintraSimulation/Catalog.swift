import SintraCore

/// A protocol's simulation with its adapter type erased, for the command line.
public struct SimulationRunner {
    public let protocolName: String
    /// Every adversary this protocol can be run against.
    public let adversaries: [Adversary]
    private let runOne: (UInt64, Adversary, Bool) -> RunResult
    private let runSeries: (UInt64, Int, [Adversary], ((RunResult) -> Void)?) -> SimulationSummary

    public init<P: SimulatedProtocol>(_ simulation: Simulation<P>) {
        protocolName = simulation.adapter.name
        adversaries = Adversary.catalogue(for: simulation.adapter)
        runOne = { simulation.run(seed: $0, adversary: $1, trace: $2) }
        runSeries = { simulation.runMany(firstSeed: $0, seeds: $1, adversaries: $2, progress: $3) }
    }

    public func adversary(named name: String) -> Adversary? {
        adversaries.first { $0.name == name }
    }

    public func run(seed: UInt64, adversary: Adversary, trace: Bool = false) -> RunResult {
        runOne(seed, adversary, trace)
    }

    public func runMany(
        firstSeed: UInt64, seeds: Int, adversaries: [Adversary], progress: ((RunResult) -> Void)? = nil
    ) -> SimulationSummary {
        runSeries(firstSeed, seeds, adversaries, progress)
    }
}

/// The protocols the simulator knows, by command-line name.
public enum SimulationCatalog {
    /// Every name `sintra sim --protocol` accepts.
    public static let protocolNames = ["rbc", "cbc", "vcbc", "abba", "mvba", "abc", "kv"]

    public enum Failure: Error, CustomStringConvertible {
        case unknownProtocol(String)

        public var description: String {
            switch self {
            case .unknownProtocol(let name):
                "unknown protocol \(name); choose one of \(SimulationCatalog.protocolNames.joined(separator: ", "))"
            }
        }
    }

    /// The runner for protocol `name` on a cluster of this shape; `options` shape the ordering protocols'
    /// scenarios.
    public static func runner(
        for name: String, replicas: Int, faulty: Int, options: SimulationOptions = SimulationOptions()
    ) throws -> SimulationRunner {
        guard protocolNames.contains(name) else { throw Failure.unknownProtocol(name) }
        // Dealing keys is the only step that can fail, and only for a shape n ≤ 3t, which the caller checks.
        let cluster = try SimulationCluster.deal(replicas: replicas, faulty: faulty)
        switch name {
        case "rbc": return SimulationRunner(Simulation(adapter: ReliableBroadcastAdapter(), cluster: cluster))
        case "cbc":
            return SimulationRunner(Simulation(adapter: ConsistentBroadcastAdapter(verifiable: false), cluster: cluster))
        case "vcbc":
            return SimulationRunner(Simulation(adapter: ConsistentBroadcastAdapter(verifiable: true), cluster: cluster))
        case "abba": return SimulationRunner(Simulation(adapter: BinaryAgreementAdapter(), cluster: cluster))
        case "mvba": return SimulationRunner(Simulation(adapter: ValidatedAgreementAdapter(), cluster: cluster))
        case "abc":
            let adapter = AtomicBroadcastAdapter(
                requestCount: options.requests, batchCountMax: options.batchCountMax, journaling: options.journaling,
                optimistic: options.optimistic)
            return SimulationRunner(Simulation(adapter: adapter, cluster: cluster))
        case "kv":
            let adapter = KeyValueAdapter(
                requestsPerClient: options.requests, batchCountMax: options.batchCountMax, journaling: options.journaling,
                optimistic: options.optimistic)
            return SimulationRunner(Simulation(adapter: adapter, cluster: cluster))
        default: throw Failure.unknownProtocol(name)
        }
    }
}
