import SintraCore

/// A frame a Byzantine node puts on its link to `to`, with the message it encodes if it is well-formed
/// (for a steering scheduler).
struct Packet<Message> {
    let to: Int
    let bytes: [UInt8]
    let message: Message?
}

/// One Byzantine node: a behaviour from the library, usually driving an honest "shadow" instance whose
/// messages it forwards, drops, tampers with or buries in garbage. It may send anything on its own link,
/// but cannot forge another node's link.
struct ByzantineNode<P: SimulatedProtocol> {
    typealias Message = P.Instance.Message

    let me: Int
    let behaviour: ByzantineBehaviour
    private var shadow: P.Instance?
    private var random: ProtocolRandom
    /// Crash: messages left before the node stops.
    private var sendsLeft: Int
    /// Garbage, flood and replay: extra packets left. Every Byzantine node's traffic is bounded, so runs end.
    private var extraBudget: Int
    /// Replay: bodies recorded in another instance, and the next one to send.
    private let recording: [[UInt8]]
    private var replayCursor = 0
    /// The adapter's memory for its own behaviours.
    private var memory: P.ByzantineMemory?
    private(set) var sentCount = 0

    /// Extra packets (garbage, flood, replay) one Byzantine node may send in a run.
    static func extraPacketsMax(replicas: Int, behaviour: ByzantineBehaviour) -> Int {
        switch behaviour {
        case .flood: 24 * replicas
        case .garbage, .replay: 6 * replicas
        case .silent, .crash, .specific: 0
        }
    }

    init(
        me: Int, behaviour: ByzantineBehaviour, shadow: P.Instance?, random: ProtocolRandom, recording: [[UInt8]],
        replicas: Int
    ) {
        self.me = me
        self.behaviour = behaviour
        switch behaviour {
        case .silent, .replay: self.shadow = nil
        case .crash, .garbage, .flood, .specific: self.shadow = shadow
        }
        self.random = random
        if case .crash(let afterSends) = behaviour { sendsLeft = afterSends } else { sendsLeft = Int.max }
        extraBudget = ByzantineNode.extraPacketsMax(replicas: replicas, behaviour: behaviour)
        self.recording = recording
    }

    /// What the node sends when the run starts.
    mutating func start(
        adapter: P, scenario: P.Scenario, context: SimulationContext, wire: SimulatedWire
    ) -> [Packet<Message>] {
        let view = ByzantineView(me: me, scenario: scenario, context: context)
        memory = adapter.makeByzantineMemory(view: view)
        var packets = [Packet<Message>]()
        if var instance = shadow {
            let effects = adapter.start(&instance, node: me, scenario: scenario, context: context)
            shadow = instance
            packets += emit(effects, adapter: adapter, view: view, wire: wire)
        }
        switch behaviour {
        case .specific(let name):
            packets += frames(adapter.forge(behaviour: name, view: view, random: &random), wire: wire)
        case .flood:
            packets += floodChunk(adapter: adapter, view: view, wire: wire, count: extraBudget / 2)
        case .replay:
            packets += replayChunk(received: nil, context: context, wire: wire, count: 2 * context.replicas)
        case .silent, .crash, .garbage:
            break
        }
        sentCount += packets.count
        return packets
    }

    /// What the node sends after receiving `bytes` from `sender`.
    mutating func receive(
        _ bytes: [UInt8], from sender: Int, adapter: P, scenario: P.Scenario, context: SimulationContext,
        wire: SimulatedWire
    ) -> [Packet<Message>] {
        if sendsLeft == 0 { return [] }
        let view = ByzantineView(me: me, scenario: scenario, context: context)
        var packets = [Packet<Message>]()
        guard case .message(let message) = wire.decode(bytes, from: sender, as: Message.self) else { return [] }
        if case .specific(let name) = behaviour, memory != nil {
            let reaction = adapter.intercept(
                message, from: sender, behaviour: name, view: view, memory: &memory!, random: &random)
            packets += frames(reaction, wire: wire)
        }
        if var instance = shadow {
            let effects = instance.handle(message, from: sender)
            shadow = instance
            packets += emit(effects, adapter: adapter, view: view, wire: wire)
        }
        switch behaviour {
        case .flood:
            packets += floodChunk(adapter: adapter, view: view, wire: wire, count: 2)
        case .replay:
            packets += replayChunk(received: wire.body(of: bytes), context: context, wire: wire, count: 2)
        case .silent, .crash, .garbage, .specific:
            break
        }
        sentCount += packets.count
        return packets
    }

    /// Frames the adapter's own messages, to everyone but the node itself.
    private func frames(_ messages: [Outgoing<Message>], wire: SimulatedWire) -> [Packet<Message>] {
        messages.flatMap { outgoing in
            recipients(outgoing.recipient, replicas: wire.limits.memberCount).filter { $0 != me }.map {
                Packet(to: $0, bytes: wire.frame(outgoing.message, from: me), message: outgoing.message)
            }
        }
    }

    private func recipients(_ recipient: Recipient, replicas: Int) -> [Int] {
        switch recipient {
        case .all: Array(1...replicas)
        case .node(let node): [node]
        }
    }

    /// Forwards the shadow's messages through the behaviour; the shadow hears its own broadcasts at once.
    private mutating func emit(
        _ first: Effects<Message, P.Instance.Output>, adapter: P, view: ByzantineView<P.Scenario>, wire: SimulatedWire
    ) -> [Packet<Message>] {
        var packets = [Packet<Message>]()
        var pending = [first]
        var loopbacks = 0
        while !pending.isEmpty {
            let effects = pending.removeFirst()
            for outgoing in effects.messages {
                for to in recipients(outgoing.recipient, replicas: view.context.replicas) {
                    if to == me {
                        // Bounded: a shadow is an honest instance, which answers itself finitely often.
                        loopbacks += 1
                        precondition(loopbacks < 10_000, "a shadow instance keeps messaging itself")
                        if var instance = shadow {
                            pending.append(instance.handle(outgoing.message, from: me))
                            shadow = instance
                        }
                    } else {
                        packets += transform(outgoing.message, to: to, adapter: adapter, view: view, wire: wire)
                    }
                }
            }
        }
        return packets
    }

    /// What actually goes to `to` in place of the shadow's `message`.
    private mutating func transform(
        _ message: Message, to: Int, adapter: P, view: ByzantineView<P.Scenario>, wire: SimulatedWire
    ) -> [Packet<Message>] {
        switch behaviour {
        case .silent, .replay:
            return []
        case .crash:
            guard sendsLeft > 0 else { return [] }
            sendsLeft -= 1
            if sendsLeft == 0 { shadow = nil }
            return [Packet(to: to, bytes: wire.frame(message, from: me), message: message)]
        case .flood:
            return [Packet(to: to, bytes: wire.frame(message, from: me), message: message)]
        case .garbage:
            let body = message.encoded
            var packets = [Packet(to: to, bytes: wire.frame(body, from: me), message: message)]
            if extraBudget > 0 && random.next() % 2 == 0 {
                extraBudget -= 1
                let bytes = wire.garbage(from: me, body: body, replicas: view.context.replicas, random: &random)
                packets.insert(Packet(to: to, bytes: bytes, message: nil), at: Int(random.next() % 2))
            }
            return packets
        case .specific(let name):
            return adapter.tamper(
                message, to: to, behaviour: name, view: view, memory: &memory!, random: &random
            ).map {
                Packet(to: to, bytes: wire.frame($0, from: me), message: $0)
            }
        }
    }

    /// Up to `count` flood packets: the adapter's well-formed flood and garbage, to random honest nodes.
    private mutating func floodChunk(
        adapter: P, view: ByzantineView<P.Scenario>, wire: SimulatedWire, count: Int
    ) -> [Packet<Message>] {
        let count = min(count, extraBudget)
        guard count > 0 else { return [] }
        extraBudget -= count
        var packets = [Packet<Message>]()
        let forged = adapter.flood(view: view, count: count, random: &random)
        let replicas = view.context.replicas
        for outgoing in forged where packets.count < count {
            for to in recipients(outgoing.recipient, replicas: replicas) where to != me && packets.count < count {
                packets.append(Packet(to: to, bytes: wire.frame(outgoing.message, from: me), message: outgoing.message))
            }
        }
        while packets.count < count {
            let to = randomOther(replicas: replicas)
            packets.append(Packet(to: to, bytes: wire.garbage(from: me, body: nil, replicas: replicas, random: &random),
                                  message: nil))
        }
        return packets
    }

    /// Replays: the next bodies recorded in another instance, framed for this one, and now and then the
    /// honest body just received, all as the node's own.
    private mutating func replayChunk(
        received: [UInt8]?, context: SimulationContext, wire: SimulatedWire, count: Int
    ) -> [Packet<Message>] {
        var packets = [Packet<Message>]()
        for _ in 0..<count where extraBudget > 0 {
            let body: [UInt8]
            if let received, random.next() % 3 == 0 {
                body = received
            } else if !recording.isEmpty {
                body = recording[replayCursor % recording.count]
                replayCursor += 1
            } else {
                continue
            }
            extraBudget -= 1
            let to = randomOther(replicas: context.replicas)
            let message = try? Message(encoded: body, limits: context.limits)
            packets.append(Packet(to: to, bytes: wire.frame(body, from: me), message: message))
        }
        return packets
    }

    private mutating func randomOther(replicas: Int) -> Int {
        let other = 1 + Int(random.next() % UInt64(replicas - 1))
        return other >= me ? other + 1 : other
    }
}
