import Crypto
import SintraCore
import SintraCrypto

/// The run loop: starts every node, then delivers one transmission at a time in the adversary's order,
/// through the wire codec, and records outputs, faults, buffer levels, counts and the trace digest.
struct Engine<P: SimulatedProtocol> {
    typealias Message = P.Instance.Message
    typealias Output = P.Instance.Output

    let adapter: P
    let context: SimulationContext
    let scenario: P.Scenario
    let wire: SimulatedWire
    /// Honest nodes' instances (nil at Byzantine positions), member i at position i − 1.
    private var instances: [P.Instance?]
    /// Byzantine nodes (nil at honest positions).
    private var byzantineNodes: [ByzantineNode<P>?]
    private var network: Network<Message>
    let stepsMax: Int
    private(set) var steps = 0
    private(set) var quiescent = false
    private var honestDeliveriesAfterHeal = 0
    private var outputs: [(node: Int, step: Int, afterHeal: Int, output: Output)] = []
    private var faultTally: [Fault.Kind: Int] = [:]
    private var falseAccusations: [String] = []
    private var bufferMaxima: [Int]
    private(set) var messagesSent: [Int]
    private(set) var bytesSent: [Int]
    private(set) var messagesReceived: [Int]
    private(set) var bytesReceived: [Int]
    private var hasher = SHA256()
    private(set) var events: [String]?
    /// When set, collects the body of every message an honest node sends (to record a replay source).
    var recordedBodies: [[UInt8]]?
    /// Crashes still to happen, in step order (`CrashEvent`).
    private var crashes: [CrashEvent]
    /// A crash due inside the node's next call, by node.
    private var armed: [Int: CrashEvent] = [:]
    /// Crashed nodes and the step at which each restarts.
    private var restartSteps: [Int: Int] = [:]
    private var restartRandom: ProtocolRandom
    /// What happened to the crashing nodes, in order, for the report.
    private(set) var restartLog: [String] = []

    init(
        adapter: P, context: SimulationContext, scenario: P.Scenario, instances: [P.Instance?],
        byzantineNodes: [ByzantineNode<P>?], network: Network<Message>, stepsMax: Int, trace: Bool,
        crashes: [CrashEvent] = [], restartRandom: ProtocolRandom = .seeded(0)
    ) {
        let n = context.replicas
        precondition(instances.count == n && byzantineNodes.count == n)
        self.adapter = adapter
        self.context = context
        self.scenario = scenario
        self.wire = SimulatedWire(
            clusterIdentifier: context.configuration.clusterIdentifier, path: context.path, limits: context.limits)
        self.instances = instances
        self.byzantineNodes = byzantineNodes
        self.network = network
        self.stepsMax = stepsMax
        bufferMaxima = Array(repeating: 0, count: n)
        messagesSent = Array(repeating: 0, count: n)
        bytesSent = Array(repeating: 0, count: n)
        messagesReceived = Array(repeating: 0, count: n)
        bytesReceived = Array(repeating: 0, count: n)
        events = trace ? [] : nil
        self.crashes = crashes
        self.restartRandom = restartRandom
    }

    /// Starts every node in index order, then delivers until nothing is pending or `stepsMax` is reached.
    mutating func run() {
        for node in 1...context.replicas {
            if instances[node - 1] != nil {
                let effects = adapter.start(&instances[node - 1]!, node: node, scenario: scenario, context: context)
                absorb(effects, at: node)
            } else {
                let packets = byzantineNodes[node - 1]!.start(
                    adapter: adapter, scenario: scenario, context: context, wire: wire)
                transmit(packets, from: node)
            }
        }
        let healTime = network.plan.healTime
        while true {
            takeDueCrashesAndRestarts()
            guard let transmission = network.next() else {
                // Nothing can be delivered: a crashed node comes back, or the next crash happens now.
                if forceNextCrashOrRestart() { continue }
                break
            }
            steps += 1
            if network.now >= healTime && transmission.fromHonest { honestDeliveriesAfterHeal += 1 }
            var header = ByteWriter(capacity: 24)
            header.write(UInt64(steps))
            header.write(network.now)
            header.write(UInt16(transmission.from))
            header.write(UInt16(transmission.to))
            header.write(UInt32(transmission.bytes.count))
            hasher.update(data: header.bytes)
            hasher.update(data: transmission.bytes)
            if events != nil {
                let line = "\(steps) t=\(network.now) \(transmission.from)→\(transmission.to) "
                    + describe(transmission.message, bytes: transmission.bytes)
                events!.append(line)
            }
            deliver(transmission)
            if steps >= stepsMax { return }
        }
        quiescent = true
    }

    private func describe(_ message: Message?, bytes: [UInt8]) -> String {
        guard let message else { return "garbage (\(bytes.count) bytes)" }
        return adapter.describe(message: message)
    }

    private mutating func deliver(_ transmission: Transmission<Message>) {
        let to = transmission.to
        if instances[to - 1] != nil {
            precondition(restartSteps[to] == nil, "the network delivered to crashed node \(to)")
            messagesReceived[to - 1] += 1
            bytesReceived[to - 1] += transmission.bytes.count
            switch wire.decode(transmission.bytes, from: transmission.from, as: Message.self) {
            case .fault(let fault):
                record(fault, reportedBy: to)
            case .message(let message):
                let effects = instances[to - 1]!.handle(message, from: transmission.from)
                if let crash = armed.removeValue(forKey: to) {
                    absorb(effects, at: to, sendsBeforeCrash: crash.sendsBeforeCrash)
                    crashNow(crash)
                } else {
                    absorb(effects, at: to)
                }
            }
        } else {
            let packets = byzantineNodes[to - 1]!.receive(
                transmission.bytes, from: transmission.from, adapter: adapter, scenario: scenario, context: context,
                wire: wire)
            transmit(packets, from: to)
        }
    }

    // MARK: - Crash and restart

    /// Crashes between calls whose step has come, arms those due inside a call, and restarts the nodes
    /// whose time down is over.
    private mutating func takeDueCrashesAndRestarts() {
        for (node, step) in restartSteps.sorted(by: { ($0.value, $0.key) < ($1.value, $1.key) }) where step <= steps {
            restart(node)
        }
        // A node still down (or already armed) takes its next crash after its restart.
        while let index = crashes.firstIndex(where: {
            $0.step <= steps && restartSteps[$0.node] == nil && armed[$0.node] == nil
        }) {
            let crash = crashes.remove(at: index)
            if crash.sendsBeforeCrash == nil {
                crashNow(crash)
            } else {
                armed[crash.node] = crash
            }
        }
    }

    /// When nothing can be delivered: restarts the node that is due first, or else crashes the node of
    /// the next armed or planned crash now (between calls). Returns false if no crash or restart is left.
    private mutating func forceNextCrashOrRestart() -> Bool {
        if let (node, _) = restartSteps.min(by: { ($0.value, $0.key) < ($1.value, $1.key) }) {
            restart(node)
            return true
        }
        if let node = armed.keys.min() {
            crashNow(armed.removeValue(forKey: node)!)
            return true
        }
        if !crashes.isEmpty {
            crashNow(crashes.removeFirst())
            return true
        }
        return false
    }

    private mutating func crashNow(_ crash: CrashEvent) {
        let node = crash.node
        restartSteps[node] = steps + crash.downSteps
        network.crash(node, lossPercent: crash.lossPercent)
        let how = crash.sendsBeforeCrash.map { "inside a call, after \($0) of its sends" } ?? "between calls"
        let line = "node \(node) crashed at step \(steps) \(how)"
        restartLog.append(line)
        events?.append("   " + line)
    }

    private mutating func restart(_ node: Int) {
        restartSteps[node] = nil
        network.restart(node)
        var random = restartRandom.split()
        let (instance, effects) = adapter.restart(
            instances[node - 1]!, node: node, scenario: scenario, context: context, random: &random)
        instances[node - 1] = instance
        for other in 1...instances.count where other != node && instances[other - 1] != nil {
            adapter.peerRestarted(&instances[other - 1]!, peer: node)
        }
        // The bound on deliveries before every required output counts from the last restart, as from the
        // last heal of a partition.
        honestDeliveriesAfterHeal = 0
        let line = "node \(node) restarted at step \(steps) \(adapter.describeResumption(instance))"
        restartLog.append(line)
        events?.append("   " + line)
        absorb(effects, at: node)
    }

    /// Takes an honest node's effects: records outputs and faults, puts messages on the network, and
    /// hands the node its own messages at once (through the codec too), until it has nothing more to say.
    /// With `sendsBeforeCrash` the node crashes inside this call, after its commit (its outputs are on
    /// disk) and after that many frames went out; the rest, and its own loopback messages, are lost.
    private mutating func absorb(_ first: Effects<Message, Output>, at node: Int, sendsBeforeCrash: Int? = nil) {
        var sendBudget = sendsBeforeCrash ?? Int.max
        var loopback = [[UInt8]]()
        var effects = first
        while true {
            checkBuffer(at: node)
            for output in effects.outputs {
                outputs.append((node, steps, honestDeliveriesAfterHeal, output))
                hasher.update(data: [0xff, UInt8(truncatingIfNeeded: node)] + adapter.agreementKey(output))
                if events != nil {
                    let line = "   node \(node) outputs \(adapter.describe(output))"
                    events!.append(line)
                }
            }
            for fault in effects.faults { record(fault, reportedBy: node) }
            for outgoing in effects.messages {
                let body = outgoing.message.encoded
                recordedBodies?.append(body)
                let bytes = wire.frame(body, from: node)
                switch outgoing.recipient {
                case .all:
                    for to in 1...context.replicas {
                        if to == node {
                            loopback.append(bytes)
                        } else if sendBudget > 0 {
                            sendBudget -= 1
                            send(bytes, message: outgoing.message, from: node, to: to)
                        }
                    }
                case .node(let to) where to == node && adapter.isTimer(outgoing.message):
                    network.sendTimer(to: node, bytes: bytes, message: outgoing.message)
                case .node(let to) where to == node:
                    loopback.append(bytes)
                case .node(let to):
                    guard context.configuration.isMember(to) else {
                        preconditionFailure("node \(node) addressed non-member \(to)")
                    }
                    if sendBudget > 0 {
                        sendBudget -= 1
                        send(bytes, message: outgoing.message, from: node, to: to)
                    }
                }
            }
            guard sendsBeforeCrash == nil, !loopback.isEmpty else { return }
            let bytes = loopback.removeFirst()
            switch wire.decode(bytes, from: node, as: Message.self) {
            case .fault(let fault):
                record(fault, reportedBy: node)
                effects = Effects()
            case .message(let message):
                effects = instances[node - 1]!.handle(message, from: node)
            }
        }
    }

    private mutating func send(_ bytes: [UInt8], message: Message?, from: Int, to: Int) {
        messagesSent[from - 1] += 1
        bytesSent[from - 1] += bytes.count
        network.send(from: from, to: to, bytes: bytes, message: message, fromHonest: instances[from - 1] != nil)
    }

    private mutating func transmit(_ packets: [Packet<Message>], from node: Int) {
        for packet in packets where packet.to != node && context.configuration.isMember(packet.to) {
            send(packet.bytes, message: packet.message, from: node, to: packet.to)
        }
    }

    private mutating func checkBuffer(at node: Int) {
        let count = adapter.bufferedMessageCount(instances[node - 1]!)
        bufferMaxima[node - 1] = max(bufferMaxima[node - 1], count)
    }

    private mutating func record(_ fault: Fault, reportedBy reporter: Int) {
        faultTally[fault.kind, default: 0] += 1
        if !context.isByzantine(fault.node) {
            falseAccusations.append("node \(reporter) accused honest node \(fault.node): \(fault)")
        }
        events?.append("   node \(reporter) reports \(fault)")
    }

    // MARK: - Results

    func observation(guarantees: Guarantees<Output>, terminationStepsMax: Int) -> Observation {
        Observation(
            honest: context.honest,
            outputs: outputs.map { entry in
                Observation.Output(
                    node: entry.node, step: entry.step, honestDeliveriesAfterHeal: entry.afterHeal,
                    key: adapter.agreementKey(entry.output), text: adapter.describe(entry.output),
                    rejection: guarantees.rejects(entry.output))
            },
            allMustOutput: guarantees.allMustOutput, totality: guarantees.totality,
            terminationStepsMax: terminationStepsMax, quiescent: quiescent,
            bufferMaxima: context.honest.map { bufferMaxima[$0 - 1] },
            bufferBound: adapter.bufferedMessageCountMax(context: context), falseAccusations: falseAccusations,
            order: guarantees.order.map(orderObservation))
    }

    /// The honest nodes' outputs as sequences of batches, for an ordering protocol.
    private func orderObservation(_ order: OrderGuarantees<Output>) -> OrderObservation {
        let honestOutputs = context.honest.map { node in outputs.filter { $0.node == node } }
        var rejections = [String]()
        var firstDelivery = [[UInt8]: Int]()
        let batches = zip(context.honest, honestOutputs).map { node, entries in
            entries.map { entry in
                let items = order.items(entry.output)
                for item in items {
                    if let reason = order.rejectsItem(item) { rejections.append("node \(node) delivered \(reason)") }
                    firstDelivery[item] = min(firstDelivery[item] ?? Int.max, entry.step)
                }
                return OrderObservation.Batch(
                    step: entry.step, honestDeliveriesAfterHeal: entry.afterHeal,
                    key: adapter.agreementKey(entry.output), text: adapter.describe(entry.output), items: items)
            }
        }
        var submissionSteps = [[UInt8]: Int]()
        for item in order.required {
            if let trigger = order.trigger(item) {
                submissionSteps[item] = firstDelivery[trigger]
            } else {
                submissionSteps[item] = 0
            }
        }
        return OrderObservation(
            batches: batches, required: order.required, itemRejections: rejections, submissionSteps: submissionSteps,
            runFindings: order.checkRun(honestOutputs.map { $0.map(\.output) }))
    }

    func decisionRounds() -> [Int] {
        context.honest.compactMap { instances[$0 - 1].flatMap(adapter.decisionRound) }
    }

    func faultCounts() -> [RunResult.FaultCount] {
        faultTally.map { RunResult.FaultCount(kind: $0.key.rawValue, count: $0.value) }.sorted { $0.kind < $1.kind }
    }

    func outputDescriptions() -> [String] {
        outputs.map { "node \($0.node) at step \($0.step): \(adapter.describe($0.output))" }
    }

    var bufferedMessagesMax: Int { bufferMaxima.max() ?? 0 }

    var allHonestOutput: Bool {
        Set(outputs.map(\.node)).count == context.honest.count
    }

    func digest() -> String {
        Hex.encode(hasher.finalize())
    }
}
