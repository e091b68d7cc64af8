/// Who a message goes to. `.all` means every member, the sender included: protocols count their own
/// echo or vote through the same path as everyone else's, and the shell loops it back.
public enum Recipient: Sendable, Hashable {
    case all
    case node(Int)
}

/// A message to send.
public struct Outgoing<Message: Sendable>: Sendable {
    public let recipient: Recipient
    public let message: Message

    public init(_ message: Message, to recipient: Recipient) {
        self.recipient = recipient
        self.message = message
    }
}

/// Evidence that a peer misbehaved: data for the operator and the metrics, never a crash or a thrown error.
public struct Fault: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable {
        /// Bytes that do not decode, or a message that breaks its protocol's structure.
        case malformed
        /// A message only another party may send (e.g. a c-send from a non-sender).
        case notAllowed
        /// Two different messages where one is allowed (double echo, double vote).
        case equivocation
        /// A signature, certificate, proof or share that does not verify.
        case invalidProof
        /// A message for a round or instance too far ahead to buffer.
        case outOfWindow
        /// A justification that does not support the claimed value.
        case unjustified
    }

    public let node: Int
    public let path: InstancePath
    public let kind: Kind
    public let detail: String

    public init(node: Int, path: InstancePath, kind: Kind, detail: String) {
        self.node = node
        self.path = path
        self.kind = kind
        self.detail = detail
    }

    public var description: String { "node \(node) at \(path): \(kind.rawValue) — \(detail)" }
}

/// What handling one input produced: messages to send, outputs to deliver, faults to record.
///
/// Ordering rule for the shell: persist the instance's state (its votes) before sending `messages`, so a
/// replica never contradicts, after a crash, what it sent before (DESIGN.md, Replication). Outputs may be
/// delivered in order after that.
public struct Effects<Message: Sendable, Output: Sendable>: Sendable {
    public var messages: [Outgoing<Message>] = []
    public var outputs: [Output] = []
    public var faults: [Fault] = []

    public init() {}

    public var isEmpty: Bool { messages.isEmpty && outputs.isEmpty && faults.isEmpty }

    public mutating func send(_ message: Message, to recipient: Recipient) {
        messages.append(Outgoing(message, to: recipient))
    }

    public mutating func broadcast(_ message: Message) {
        messages.append(Outgoing(message, to: .all))
    }

    public mutating func output(_ output: Output) {
        outputs.append(output)
    }

    public mutating func fault(_ node: Int, _ path: InstancePath, _ kind: Fault.Kind, _ detail: String) {
        faults.append(Fault(node: node, path: path, kind: kind, detail: detail))
    }

    public mutating func append(_ other: Effects) {
        messages += other.messages
        outputs += other.outputs
        faults += other.faults
    }

    /// Lifts a child's effects into a parent's message and output types.
    public func lifted<ParentMessage, ParentOutput>(
        message wrap: (Message) -> ParentMessage, output convert: (Output) -> ParentOutput?
    ) -> Effects<ParentMessage, ParentOutput> {
        var result = Effects<ParentMessage, ParentOutput>()
        result.messages = messages.map { Outgoing(wrap($0.message), to: $0.recipient) }
        result.outputs = outputs.compactMap(convert)
        result.faults = faults
        return result
    }
}
