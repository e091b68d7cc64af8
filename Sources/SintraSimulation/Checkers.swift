import SintraCore
import SintraCrypto

/// A broken invariant, with what is needed to replay the run that broke it.
public struct Violation: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        /// Two honest nodes output different values.
        case agreement
        /// An honest node output a value the run's inputs do not allow (e.g. not what an honest sender sent).
        case validity
        /// An honest node output more than once.
        case integrity
        /// One honest node output, another never did, where the protocol promises totality.
        case totality
        /// Honest nodes that must output did not, or not within the bound after the network healed.
        case termination
        /// An instance held more messages for later than its protocol's bound.
        case bufferBound = "buffer-bound"
        /// An honest node reported a fault against another honest node (or its own messages did not decode).
        case falseAccusation = "false-accusation"
        /// Two honest nodes delivered items in different orders (ordering protocols).
        case totalOrder = "total-order"
        /// An honest node never delivered an item it had to (ordering protocols: a request submitted to
        /// t + 1 honest nodes).
        case lostRequest = "lost-request"
    }

    public let kind: Kind
    public let detail: String
    public let seed: UInt64
    /// The exact command that replays the run.
    public let replay: String

    public init(kind: Kind, detail: String, seed: UInt64, replay: String) {
        self.kind = kind
        self.detail = detail
        self.seed = seed
        self.replay = replay
    }

    public var description: String { "\(kind.rawValue): \(detail) [seed \(seed); replay: \(replay)]" }
}

/// What a run showed, in protocol-independent terms: who output what and when, what the adapter said
/// the honest nodes must do, buffer high-water marks and accusations. The checkers read only this.
public struct Observation: Sendable {
    public struct Output: Sendable {
        public let node: Int
        /// The delivery after which the output happened (1-based; 0 for outputs when starting).
        public let step: Int
        /// Deliveries of honest messages after the network healed, when the output happened.
        public let honestDeliveriesAfterHeal: Int
        /// The bytes outputs must agree on.
        public let key: [UInt8]
        public let text: String
        /// Why this output is not allowed (from the adapter's guarantees), or nil.
        public let rejection: String?

        public init(
            node: Int, step: Int, honestDeliveriesAfterHeal: Int, key: [UInt8], text: String, rejection: String?
        ) {
            self.node = node
            self.step = step
            self.honestDeliveriesAfterHeal = honestDeliveriesAfterHeal
            self.key = key
            self.text = text
            self.rejection = rejection
        }
    }

    /// Honest members, in increasing order.
    public var honest: [Int]
    /// Honest outputs in the order they happened.
    public var outputs: [Output]
    public var allMustOutput: Bool
    public var totality: Bool
    /// The bound on honest deliveries after the last heal before every required output.
    public var terminationStepsMax: Int
    /// False if the run was cut off at its step limit rather than running until nothing was pending.
    public var quiescent: Bool
    /// Highest buffered-message count per honest node (aligned with `honest`), and the bound.
    public var bufferMaxima: [Int]
    public var bufferBound: Int
    /// Faults reported by honest nodes against honest nodes, as text.
    public var falseAccusations: [String]
    /// For ordering protocols (many outputs per node): the batches and what had to be delivered.
    public var order: OrderObservation?

    public init(
        honest: [Int], outputs: [Output], allMustOutput: Bool, totality: Bool, terminationStepsMax: Int,
        quiescent: Bool, bufferMaxima: [Int], bufferBound: Int, falseAccusations: [String],
        order: OrderObservation? = nil
    ) {
        self.honest = honest
        self.outputs = outputs
        self.allMustOutput = allMustOutput
        self.totality = totality
        self.terminationStepsMax = terminationStepsMax
        self.quiescent = quiescent
        self.bufferMaxima = bufferMaxima
        self.bufferBound = bufferBound
        self.falseAccusations = falseAccusations
        self.order = order
    }
}

/// The invariants checked after every run. They know nothing of any protocol's code: only what honest
/// nodes output, what the run's inputs allow, and what the shell could see (buffers, accusations).
public enum Checkers {
    public struct Finding: Sendable, Hashable {
        public let kind: Violation.Kind
        public let detail: String
    }

    /// Every check, in a fixed order. An ordering protocol's outputs are checked as sequences (`order`).
    public static func check(_ observation: Observation) -> [Finding] {
        if let order = observation.order {
            return Checkers.order(observation, order) + bufferBound(observation) + accusations(observation)
        }
        return integrity(observation) + agreement(observation) + validity(observation) + termination(observation)
            + bufferBound(observation) + accusations(observation)
    }

    /// Each honest node outputs at most once.
    public static func integrity(_ observation: Observation) -> [Finding] {
        observation.honest.compactMap { node in
            let count = observation.outputs.filter { $0.node == node }.count
            return count > 1 ? Finding(kind: .integrity, detail: "node \(node) output \(count) times") : nil
        }
    }

    /// All honest outputs agree (compared by their agreement key).
    public static func agreement(_ observation: Observation) -> [Finding] {
        guard let first = observation.outputs.first else { return [] }
        return observation.outputs.dropFirst().filter { $0.key != first.key }.prefix(1).map { other in
            Finding(
                kind: .agreement,
                detail: "node \(first.node) output \(first.text) but node \(other.node) output \(other.text)")
        }
    }

    /// Every honest output is one the run's inputs allow.
    public static func validity(_ observation: Observation) -> [Finding] {
        observation.outputs.compactMap { output in
            output.rejection.map { Finding(kind: .validity, detail: "node \(output.node) output \(output.text): \($0)") }
        }
    }

    /// Required outputs happened, and within the bound after the network healed; totality.
    public static func termination(_ observation: Observation) -> [Finding] {
        var findings = [Finding]()
        let outputNodes = Set(observation.outputs.map(\.node))
        let missing = observation.honest.filter { !outputNodes.contains($0) }
        let cutOff = observation.quiescent ? "" : " (run cut off at its step limit)"
        if observation.allMustOutput && !missing.isEmpty {
            findings.append(Finding(kind: .termination, detail: "honest nodes \(missing) never output\(cutOff)"))
        } else if observation.totality && !missing.isEmpty && !outputNodes.isEmpty {
            findings.append(
                Finding(
                    kind: .totality,
                    detail: "honest nodes \(outputNodes.sorted()) output but \(missing) never did\(cutOff)"))
        }
        if observation.allMustOutput || observation.totality,
            let late = observation.outputs.first(where: {
                $0.honestDeliveriesAfterHeal > observation.terminationStepsMax
            })
        {
            findings.append(
                Finding(
                    kind: .termination,
                    detail: "node \(late.node) output only after \(late.honestDeliveriesAfterHeal) honest deliveries "
                        + "after the network healed (bound \(observation.terminationStepsMax))"))
        }
        return findings
    }

    /// No instance buffered more than its bound.
    public static func bufferBound(_ observation: Observation) -> [Finding] {
        zip(observation.honest, observation.bufferMaxima).compactMap { node, maximum in
            maximum > observation.bufferBound
                ? Finding(
                    kind: .bufferBound,
                    detail: "node \(node) buffered \(maximum) messages (bound \(observation.bufferBound))")
                : nil
        }
    }

    /// No honest node accused an honest node.
    public static func accusations(_ observation: Observation) -> [Finding] {
        observation.falseAccusations.prefix(3).map { Finding(kind: .falseAccusation, detail: $0) }
    }
}
