import SintraCore
import SintraCrypto

/// A minimal seeded message pump for unit tests of one protocol: every message is encoded, decoded and
/// delivered in a random order chosen by the seed. The full adversarial simulator is SintraSimulation.
struct TestNetwork<Instance: ProtocolInstance> {
    struct InFlight {
        let from: Int
        let to: Int
        let bytes: [UInt8]
        /// Released from `held` by `releaseHeld`: `holding` no longer applies.
        var exempt = false
    }

    var nodes: [Int: Instance]
    var queue: [InFlight] = []
    var outputs: [Int: [Instance.Output]] = [:]
    var faults: [Fault] = []
    var random: ProtocolRandom
    let limits: WireLimits
    let replicas: Int
    /// Messages to these nodes are dropped (they are silent and deaf).
    var crashed: Set<Int> = []
    /// Messages to these nodes wait in `held` until `release` (a very slow, but correct, node).
    var withheld: Set<Int> = []
    var held: [InFlight] = []
    /// Messages for which this returns true (sender, recipient, message) wait in `held` too, until
    /// `releaseHeld` (e.g. timers, or one kind of message to some nodes).
    var holding: ((Int, Int, Instance.Message) -> Bool)?
    var deliveredCount = 0
    /// Nodes whose sent messages are kept in `sent` (encoded, in sending order).
    var recording: Set<Int> = []
    var sent: [Int: [[UInt8]]] = [:]

    init(replicas: Int, nodes: [Int: Instance], seed: UInt64) {
        self.replicas = replicas
        self.nodes = nodes
        self.random = .seeded(seed)
        self.limits = WireLimits(memberCount: replicas)
    }

    mutating func absorb(_ effects: Effects<Instance.Message, Instance.Output>, from node: Int) {
        outputs[node, default: []] += effects.outputs
        faults += effects.faults
        for outgoing in effects.messages {
            let bytes = outgoing.message.encoded
            if recording.contains(node) { sent[node, default: []].append(bytes) }
            switch outgoing.recipient {
            case .all:
                for to in 1...replicas { queue.append(InFlight(from: node, to: to, bytes: bytes)) }
            case .node(let to):
                queue.append(InFlight(from: node, to: to, bytes: bytes))
            }
        }
    }

    /// Injects raw bytes as if `from` had sent them to `to`.
    mutating func inject(_ bytes: [UInt8], from: Int, to: Int) {
        queue.append(InFlight(from: from, to: to, bytes: bytes))
    }

    /// Lets a withheld node receive everything held for it (in the order it was sent) and what follows.
    mutating func release(_ node: Int) {
        withheld.remove(node)
        queue += held.filter { $0.to == node }
        held.removeAll { $0.to == node }
    }

    /// Lets the held messages that `which` selects (sender, recipient, message) go, in the order they were
    /// sent, past `holding`.
    mutating func releaseHeld(where which: (Int, Int, Instance.Message) -> Bool) {
        let chosen = held.filter { flight in
            (try? Instance.Message(encoded: flight.bytes, limits: limits)).map { which(flight.from, flight.to, $0) } ?? false
        }
        held.removeAll { flight in chosen.contains { $0.bytes == flight.bytes && $0.from == flight.from && $0.to == flight.to } }
        queue += chosen.map { flight in
            var released = flight
            released.exempt = true
            return released
        }
    }

    /// Delivers messages in random order until the queue is empty or `stepsMax` deliveries happened.
    mutating func run(stepsMax: Int = 200_000) {
        var steps = 0
        while !queue.isEmpty && steps < stepsMax {
            let index = Int(random.next() % UInt64(queue.count))
            queue.swapAt(index, queue.count - 1)
            let flight = queue.removeLast()
            steps += 1
            if withheld.contains(flight.to) {
                held.append(flight)
                continue
            }
            guard !crashed.contains(flight.to), var node = nodes[flight.to] else { continue }
            let decoded = Result { try Instance.Message(encoded: flight.bytes, limits: limits) }
            if let holding, !flight.exempt, case .success(let message) = decoded, holding(flight.from, flight.to, message) {
                held.append(flight)
                continue
            }
            deliveredCount += 1
            let message: Instance.Message
            switch decoded {
            case .success(let decodedMessage):
                message = decodedMessage
            case .failure(let error):
                faults.append(Fault(node: flight.from, path: node.path, kind: .malformed, detail: "\(error)"))
                continue
            }
            let effects = node.handle(message, from: flight.from)
            nodes[flight.to] = node
            absorb(effects, from: flight.to)
        }
    }
}

enum TestCluster {
    static func keys(n: Int, t: Int, seed: UInt64) throws -> (GroupConfiguration, [LocalKeys]) {
        var random = ProtocolRandom.seeded(seed)
        let dealt = try KeyDealer.deal(replicas: n, faulty: t, using: &random)
        let configuration = try GroupConfiguration(
            replicas: n, faulty: t, clusterIdentifier: dealt.clusterIdentifier,
            memberKeys: try dealt.identityKeys.map { try MemberPublicKey(bytes: $0) },
            coinKey: dealt.coinPublicKey, encryptionKey: dealt.encryptionPublicKey)
        return (configuration, try dealt.secrets.map { try LocalKeys(secrets: $0) })
    }
}
