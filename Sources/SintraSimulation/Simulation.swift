import Crypto
import SintraCore
import SintraCrypto

/// Keys for simulated clusters. They depend on (n, t) only, so they are dealt once per shape and a run
/// still replays from its seed; each run's instance path contains the seed, so signatures and coin
/// values still differ from run to run.
public struct SimulationCluster: Sendable {
    public let configuration: GroupConfiguration
    /// Member i's keys at position i − 1.
    public let keys: [LocalKeys]

    public static func deal(replicas: Int, faulty: Int) throws -> SimulationCluster {
        var random = ProtocolRandom.seeded(0x5349_4E54_5241_0000 ^ UInt64(replicas) << 16 ^ UInt64(faulty))
        let dealt = try KeyDealer.deal(replicas: replicas, faulty: faulty, using: &random)
        let configuration = try GroupConfiguration(
            replicas: replicas, faulty: faulty, clusterIdentifier: dealt.clusterIdentifier,
            memberKeys: try dealt.identityKeys.map { try MemberPublicKey(bytes: $0) },
            coinKey: dealt.coinPublicKey, encryptionKey: dealt.encryptionPublicKey)
        return SimulationCluster(configuration: configuration, keys: try dealt.secrets.map { try LocalKeys(secrets: $0) })
    }
}

/// Everything one run produced: what the adversary did, the costs, the violations and a digest of the
/// whole trace (equal digests for equal seeds is what "replays exactly" means).
public struct RunResult: Sendable, Codable {
    public let protocolName: String
    public let adversary: String
    public let seed: UInt64
    public let replicas: Int
    public let faulty: Int
    /// The scheduler as drawn for this run (kind and parameters).
    public let scheduler: String
    public let byzantine: [Int]
    /// The behaviour of each Byzantine node, aligned with `byzantine`.
    public let behaviours: [String]
    /// Deliveries in the run.
    public let steps: Int
    /// Whether the run ended with nothing pending (rather than at its step limit).
    public let quiescent: Bool
    /// Decision round of each honest node that decided (binary agreement), in node order.
    public let decisionRounds: [Int]
    /// The most messages any honest instance held for later at once.
    public let bufferedMessagesMax: Int
    /// Per node 1…n (position i − 1): messages and bytes sent and received on the network (loopback excluded).
    public let messagesSent: [Int]
    public let bytesSent: [Int]
    public let messagesReceived: [Int]
    public let bytesReceived: [Int]
    /// Faults honest nodes reported, as (kind, count), sorted by kind.
    public let faultCounts: [FaultCount]
    /// Each honest node's outputs, described.
    public let outputs: [String]
    /// Whether every honest node output.
    public let allHonestOutput: Bool
    public let violations: [Violation]
    /// Ordering protocols: batches, items delivered and their latency.
    public let order: OrderStatistics?
    /// SHA-256 over every delivery (step, time, sender, recipient, bytes) and every honest output.
    public let traceDigest: String
    /// The delivery log, when asked for.
    public let trace: [String]?
    public let replay: String
    /// Honest nodes that crashed and restarted (the `restart` adversaries), and what happened to them.
    public let crashers: [Int]
    public let restarts: [String]
    /// Liveness findings of a run with more than t nodes restarting (`restart-many`): a stall, counted
    /// apart from the violations.
    public let stalls: [String]

    public struct FaultCount: Sendable, Codable, Hashable {
        public let kind: String
        public let count: Int
    }
}

/// Runs one protocol under attack, one seed at a time.
public struct Simulation<P: SimulatedProtocol> {
    public let adapter: P
    public let cluster: SimulationCluster

    public init(adapter: P, cluster: SimulationCluster) {
        self.adapter = adapter
        self.cluster = cluster
    }

    /// The command that replays one run.
    public func replayCommand(seed: UInt64, adversary: Adversary) -> String {
        let configuration = cluster.configuration
        return "sintra sim --protocol \(adapter.name) --replicas \(configuration.replicas) "
            + "--faulty \(configuration.faulty) --adversary \(adversary.name) --seed \(seed) --seeds 1"
            + adapter.commandLineOptions
    }

    /// One run: the seed decides the Byzantine nodes, their behaviours, the scheduler, the inputs and
    /// every delivery.
    public func run(seed: UInt64, adversary: Adversary, trace: Bool = false) -> RunResult {
        let configuration = cluster.configuration
        let n = configuration.replicas
        var master = ProtocolRandom.seeded(seed)
        var adversaryRandom = master.split()
        var scenarioRandom = master.split()
        let networkRandom = master.split()
        var nodeRandoms = (1...n).map { _ in master.split() }
        let byzantineRandoms = (1...n).map { _ in master.split() }

        // t Byzantine nodes, a uniformly random subset; within the restart bound, k crashing honest nodes
        // take the place of k of them.
        let restartMode = adapter.supportsRestart ? adversary.restarts : nil
        var withinBoundCrashers = 0
        if restartMode == .withinBound, configuration.faulty > 0 {
            withinBoundCrashers = 1 + Int(adversaryRandom.next() % UInt64(configuration.faulty))
        }
        let byzantineCount = configuration.faulty - withinBoundCrashers
        var members = Array(1...n)
        for index in 0..<configuration.faulty {
            members.swapAt(index, index + Int(adversaryRandom.next() % UInt64(n - index)))
        }
        let byzantine = members.prefix(byzantineCount).sorted()
        let honest = (1...n).filter { !byzantine.contains($0) }
        var crashers = [Int]()
        switch restartMode {
        case .withinBound?:
            crashers = members[byzantineCount..<configuration.faulty].sorted()
        case .beyondBound?:
            // t + 1 up to every honest node.
            let count = configuration.faulty + 1
                + Int(adversaryRandom.next() % UInt64(honest.count - configuration.faulty))
            var shuffled = honest
            for index in 0..<count {
                shuffled.swapAt(index, index + Int(adversaryRandom.next() % UInt64(shuffled.count - index)))
            }
            crashers = shuffled.prefix(count).sorted()
        case nil:
            break
        }
        var schedulers: [SchedulerKind] = [.random, .starve, .partition]
        if adapter.hasSteering { schedulers.append(.steer) }
        let scheduler = adversary.scheduler ?? schedulers[Int(adversaryRandom.next() % UInt64(schedulers.count))]
        let library = ByzantineBehaviour.genericNames + adapter.specificBehaviours
        let behaviours = byzantine.map { _ in
            ByzantineBehaviour.named(
                adversary.behaviour ?? library[Int(adversaryRandom.next() % UInt64(library.count))],
                replicas: n, random: &adversaryRandom)
        }
        let plan = NetworkPlan.draw(scheduler, replicas: n, honest: honest, random: &adversaryRandom)

        let runPath = InstancePath("sim").child("run", seed)
        let context = SimulationContext(
            configuration: configuration, keys: cluster.keys, path: runPath.child(adapter.name, 0),
            limits: WireLimits(memberCount: n), byzantine: byzantine, honest: honest, seed: seed)
        let scenario = adapter.makeScenario(context: context, random: &scenarioRandom)

        var recording = [[UInt8]]()
        if behaviours.contains(.replay) {
            recording = record(
                scenario: scenario, path: runPath.child(adapter.name, 1), random: adversaryRandom.split())
        }
        var instances = [P.Instance?]()
        var byzantineNodes = [ByzantineNode<P>?]()
        for node in 1...n {
            let instance = adapter.makeInstance(
                node: node, scenario: scenario, context: context, random: &nodeRandoms[node - 1])
            if let position = byzantine.firstIndex(of: node) {
                instances.append(nil)
                byzantineNodes.append(
                    ByzantineNode(
                        me: node, behaviour: behaviours[position], shadow: instance,
                        random: byzantineRandoms[node - 1], recording: recording, replicas: n))
            } else {
                instances.append(instance)
                byzantineNodes.append(nil)
            }
        }
        let byzantineBudget = behaviours.reduce(0) { $0 + ByzantineNode<P>.extraPacketsMax(replicas: n, behaviour: $1) }
        var crashes = [CrashEvent]()
        var restartRandom = ProtocolRandom.seeded(0)
        if let restartMode {
            // Runs of abc and kv take about 28 n² deliveries (n = 4 and 7, a few rounds): most crashes
            // fall inside the run, the later ones of a node after it went quiet.
            crashes = CrashEvent.draw(
                restartMode, crashers: crashers, replicas: n,
                window: 24 * n * n, random: &adversaryRandom)
            restartRandom = master.split()
        }
        var engine = Engine(
            adapter: adapter, context: context, scenario: scenario, instances: instances,
            byzantineNodes: byzantineNodes,
            network: Network(
                plan: plan, random: networkRandom,
                steering: scheduler == .steer ? adapter.makeSteering(scenario: scenario, context: context) : nil),
            stepsMax: 8 * adapter.terminationStepsMax(context: context) + 4 * byzantineBudget + 1000,
            trace: trace, crashes: crashes, restartRandom: restartRandom)
        engine.run()

        let replay = replayCommand(seed: seed, adversary: adversary)
        let guarantees = adapter.guarantees(scenario: scenario, context: context)
        let observation = engine.observation(
            guarantees: guarantees,
            terminationStepsMax: adapter.terminationStepsMax(context: context) + byzantineBudget)
        var findings = Checkers.check(observation)
        // Beyond the restart bound a missing delivery is counted as a stall, apart from the violations: stage 1
        // (`--no-journal`) does not promise liveness there, stage 2 does (its tests expect no stall).
        var stalls = [String]()
        // The liveness findings are exactly those of `Checkers.lostItems` (a required request missing at an
        // honest node, or late); every other finding stays a violation.
        if restartMode == .beyondBound, let order = observation.order {
            let liveness = Set(Checkers.lostItems(observation, order))
            stalls = findings.filter(liveness.contains).map { "\($0.kind.rawValue): \($0.detail)" }
            findings.removeAll(where: liveness.contains)
        }
        let violations = findings.map {
            Violation(kind: $0.kind, detail: $0.detail, seed: seed, replay: replay)
        }
        return RunResult(
            protocolName: adapter.name, adversary: adversary.name, seed: seed, replicas: n,
            faulty: configuration.faulty, scheduler: plan.summary, byzantine: byzantine,
            behaviours: behaviours.map(\.description), steps: engine.steps, quiescent: engine.quiescent,
            decisionRounds: engine.decisionRounds(), bufferedMessagesMax: engine.bufferedMessagesMax,
            messagesSent: engine.messagesSent, bytesSent: engine.bytesSent,
            messagesReceived: engine.messagesReceived, bytesReceived: engine.bytesReceived,
            faultCounts: engine.faultCounts(), outputs: engine.outputDescriptions(),
            allHonestOutput: engine.allHonestOutput, violations: violations,
            order: observation.order.map(OrderStatistics.init),
            traceDigest: engine.digest(), trace: engine.events, replay: replay,
            crashers: crashers, restarts: engine.restartLog, stalls: stalls)
    }

    /// The message bodies of an honest run of a sibling instance (another path), for replaying.
    private func record(scenario: P.Scenario, path: InstancePath, random: ProtocolRandom) -> [[UInt8]] {
        var random = random
        let n = cluster.configuration.replicas
        let context = SimulationContext(
            configuration: cluster.configuration, keys: cluster.keys, path: path,
            limits: WireLimits(memberCount: n), byzantine: [], honest: Array(1...n), seed: 0)
        let instances: [P.Instance?] = (1...n).map { node in
            adapter.makeInstance(node: node, scenario: scenario, context: context, random: &random)
        }
        let plan = NetworkPlan.draw(.random, replicas: n, honest: Array(1...n), random: &random)
        var engine = Engine(
            adapter: adapter, context: context, scenario: scenario, instances: instances,
            byzantineNodes: Array(repeating: nil, count: n),
            network: Network(plan: plan, random: random.split(), steering: nil), stepsMax: 4 * n * n, trace: false)
        engine.recordedBodies = []
        engine.run()
        var seen = Set<[UInt8]>()
        return engine.recordedBodies!.filter { seen.insert($0).inserted }
    }
}
