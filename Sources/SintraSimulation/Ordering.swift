import SintraCore

/// What an ordering protocol promises (atomic broadcast, and services that run on it): every honest node
/// outputs a sequence of batches of items (requests), and the checkers compare those sequences item by
/// item rather than expecting one output per node.
///
/// The adapter says which items an output holds, which items every honest node must deliver, which may
/// never be delivered, when each item was submitted (for latency), and any whole-run check of its own
/// over the honest outputs (e.g. replies against a sequential reference execution). The checkers in
/// `Checkers.order` read only these and the outputs, never the protocol's state.
public struct OrderGuarantees<Output> {
    /// The items an output delivers, in delivery order.
    public var items: (Output) -> [[UInt8]]
    /// Items every honest node must have delivered by the end of the run (e.g. requests submitted to at
    /// least t + 1 honest nodes).
    public var required: [[UInt8]]
    /// Why no honest node may deliver `item`, or nil if it may (e.g. never submitted by anyone).
    public var rejectsItem: ([UInt8]) -> String?
    /// The item whose first delivery by an honest node makes the nodes submit `item` (a closed-loop client's
    /// previous request), or nil if `item` is submitted when the run starts. Only for latency.
    public var trigger: ([UInt8]) -> [UInt8]?
    /// Checks of the adapter's own over the honest nodes' outputs (aligned with the honest nodes).
    public var checkRun: ([[Output]]) -> [Checkers.Finding]

    public init(
        items: @escaping (Output) -> [[UInt8]], required: [[UInt8]],
        rejectsItem: @escaping ([UInt8]) -> String? = { _ in nil },
        trigger: @escaping ([UInt8]) -> [UInt8]? = { _ in nil },
        checkRun: @escaping ([[Output]]) -> [Checkers.Finding] = { _ in [] }
    ) {
        self.items = items
        self.required = required
        self.rejectsItem = rejectsItem
        self.trigger = trigger
        self.checkRun = checkRun
    }
}

/// What a run of an ordering protocol showed: each honest node's batches with their items, what had to
/// be delivered, and the adapter's own findings.
public struct OrderObservation: Sendable {
    public struct Batch: Sendable {
        /// The delivery after which the batch was output (0 for outputs when starting).
        public let step: Int
        public let honestDeliveriesAfterHeal: Int
        /// The bytes on which the batches with the same index must agree.
        public let key: [UInt8]
        public let text: String
        public let items: [[UInt8]]

        public init(step: Int, honestDeliveriesAfterHeal: Int, key: [UInt8], text: String, items: [[UInt8]]) {
            self.step = step
            self.honestDeliveriesAfterHeal = honestDeliveriesAfterHeal
            self.key = key
            self.text = text
            self.items = items
        }
    }

    /// Each honest node's batches in output order, aligned with `Observation.honest`.
    public var batches: [[Batch]]
    public var required: [[UInt8]]
    /// Why delivered items were not allowed (one entry per node and item).
    public var itemRejections: [String]
    /// When each item was submitted (the step), for the items whose submission time is known.
    public var submissionSteps: [[UInt8]: Int]
    /// The adapter's whole-run findings.
    public var runFindings: [Checkers.Finding]

    public init(
        batches: [[Batch]], required: [[UInt8]], itemRejections: [String] = [], submissionSteps: [[UInt8]: Int] = [:],
        runFindings: [Checkers.Finding] = []
    ) {
        self.batches = batches
        self.required = required
        self.itemRejections = itemRejections
        self.submissionSteps = submissionSteps
        self.runFindings = runFindings
    }
}

extension Checkers {
    /// The checks of an ordering protocol, in a fixed order: per-index agreement of batches, total order of
    /// items, integrity (no item twice), validity, no required item lost, the required items delivered
    /// within the bound after the network healed, and the adapter's own findings.
    public static func order(_ observation: Observation, _ order: OrderObservation) -> [Finding] {
        batchAgreement(observation, order) + totalOrder(observation, order) + itemIntegrity(observation, order)
            + validity(observation) + order.itemRejections.prefix(3).map { Finding(kind: .validity, detail: $0) }
            + lostItems(observation, order) + order.runFindings
    }

    /// Batches with the same index agree at every honest node that output them.
    public static func batchAgreement(_ observation: Observation, _ order: OrderObservation) -> [Finding] {
        let longest = order.batches.map(\.count).max() ?? 0
        for index in 0..<longest {
            let holders = zip(observation.honest, order.batches).filter { $0.1.count > index }
            guard let (firstNode, firstBatches) = holders.first else { continue }
            if let (node, batches) = holders.first(where: { $0.1[index].key != firstBatches[index].key }) {
                return [
                    Finding(
                        kind: .agreement,
                        detail: "batch \(index + 1): node \(firstNode) output \(firstBatches[index].text) but node "
                            + "\(node) output \(batches[index].text)")
                ]
            }
        }
        return []
    }

    /// Every honest node's sequence of items is a prefix of one common sequence (the longest).
    public static func totalOrder(_ observation: Observation, _ order: OrderObservation) -> [Finding] {
        let sequences = order.batches.map { $0.flatMap(\.items) }
        guard let longest = sequences.max(by: { $0.count < $1.count }) else { return [] }
        for (node, sequence) in zip(observation.honest, sequences) {
            let differences = zip(sequence, longest).enumerated().filter { $0.element.0 != $0.element.1 }
            if let position = differences.first?.offset {
                return [
                    Finding(
                        kind: .totalOrder,
                        detail: "node \(node)'s item \(position + 1) differs from the longest honest sequence's")
                ]
            }
        }
        return []
    }

    /// No honest node delivers an item twice.
    public static func itemIntegrity(_ observation: Observation, _ order: OrderObservation) -> [Finding] {
        zip(observation.honest, order.batches).compactMap { node, batches in
            var seen = Set<[UInt8]>()
            let items = batches.flatMap(\.items)
            guard let repeated = items.firstIndex(where: { !seen.insert($0).inserted }) else { return nil }
            return Finding(kind: .integrity, detail: "node \(node) delivered its item \(repeated + 1) a second time")
        }
    }

    /// Every required item is delivered by every honest node, and within the bound after the network healed.
    public static func lostItems(_ observation: Observation, _ order: OrderObservation) -> [Finding] {
        let cutOff = observation.quiescent ? "" : " (run cut off at its step limit)"
        var findings = [Finding]()
        let required = Set(order.required)
        for (node, batches) in zip(observation.honest, order.batches) {
            let delivered = Set(batches.flatMap(\.items))
            let missing = order.required.filter { !delivered.contains($0) }
            if !missing.isEmpty {
                findings.append(
                    Finding(
                        kind: .lostRequest,
                        detail: "node \(node) never delivered \(missing.count) of the \(order.required.count) "
                            + "required items\(cutOff)"))
                continue
            }
            // The batch that completed the required items.
            if let finalBatch = batches.lastIndex(where: { $0.items.contains(where: required.contains) }),
                batches[finalBatch].honestDeliveriesAfterHeal > observation.terminationStepsMax
            {
                findings.append(
                    Finding(
                        kind: .termination,
                        detail: "node \(node) delivered the last required item only after "
                            + "\(batches[finalBatch].honestDeliveriesAfterHeal) honest deliveries after the network "
                            + "healed (bound \(observation.terminationStepsMax))"))
            }
        }
        return Array(findings.prefix(3))
    }
}

/// Costs and delays of one run of an ordering protocol.
public struct OrderStatistics: Sendable, Codable {
    /// The most batches an honest node output.
    public let batchesMax: Int
    /// Distinct items that every honest node delivered.
    public let itemsDelivered: Int
    /// Items every honest node had to deliver.
    public let itemsRequired: Int
    /// For each required item delivered everywhere whose submission step is known: deliveries from its
    /// submission until the last honest node delivered it.
    public let latencySteps: [Int]

    public init(_ order: OrderObservation) {
        batchesMax = order.batches.map(\.count).max() ?? 0
        let sets = order.batches.map { Set($0.flatMap(\.items)) }
        let common = sets.dropFirst().reduce(sets.first ?? []) { $0.intersection($1) }
        itemsDelivered = common.count
        itemsRequired = order.required.count
        var lastDelivery = [[UInt8]: Int]()
        for batches in order.batches {
            for batch in batches {
                for item in batch.items { lastDelivery[item] = max(lastDelivery[item] ?? 0, batch.step) }
            }
        }
        latencySteps = order.required.compactMap { item in
            guard common.contains(item), let submitted = order.submissionSteps[item], let delivered = lastDelivery[item]
            else { return nil }
            return delivered - submitted
        }
    }
}

/// Costs and delays of an ordering protocol over many runs (of one adversary).
public struct OrderSummary: Sendable, Codable {
    /// Requests (items) delivered by every honest node, summed over runs.
    public let requestsDelivered: Int
    /// Requests every honest node had to deliver, summed over runs.
    public let requestsRequired: Int
    /// Batches (rounds) per run, at the honest node that output most.
    public let batchesMean: Double
    public let batchesMax: Int
    /// Deliveries (simulated steps) from a required request's submission until every honest node delivered it.
    public let latencyStepsMean: Double
    public let latencyStepsMax: Int
    /// Messages and bytes sent by honest nodes per delivered request (all runs together).
    public let honestMessagesPerRequest: Double
    public let honestBytesPerRequest: Double

    /// Folds the runs that carry order statistics; nil if none does.
    public init?(_ results: [RunResult]) {
        let ordered = results.filter { $0.order != nil }
        guard !ordered.isEmpty else { return nil }
        let statistics = ordered.map { $0.order! }
        requestsDelivered = statistics.reduce(0) { $0 + $1.itemsDelivered }
        requestsRequired = statistics.reduce(0) { $0 + $1.itemsRequired }
        batchesMean = Double(statistics.reduce(0) { $0 + $1.batchesMax }) / Double(statistics.count)
        batchesMax = statistics.map(\.batchesMax).max() ?? 0
        let latencies = statistics.flatMap(\.latencySteps)
        latencyStepsMean = latencies.isEmpty ? 0 : Double(latencies.reduce(0, +)) / Double(latencies.count)
        latencyStepsMax = latencies.max() ?? 0
        func honestTotal(_ counts: KeyPath<RunResult, [Int]>) -> Int {
            ordered.reduce(0) { total, result in
                total + (1...result.replicas).filter { !result.byzantine.contains($0) }.reduce(0) {
                    $0 + result[keyPath: counts][$1 - 1]
                }
            }
        }
        let delivered = Double(max(requestsDelivered, 1))
        honestMessagesPerRequest = Double(honestTotal(\.messagesSent)) / delivered
        honestBytesPerRequest = Double(honestTotal(\.bytesSent)) / delivered
    }

    /// One line for the text report.
    var text: String {
        func whole(_ value: Double) -> String { String(Int(value.rounded())) }
        let batches = (batchesMean * 10).rounded() / 10
        return "requests delivered \(requestsDelivered) of \(requestsRequired) required; batches mean \(batches) "
            + "max \(batchesMax); latency (steps) mean \(whole(latencyStepsMean)) max \(latencyStepsMax); per "
            + "delivered request: honest msgs \(whole(honestMessagesPerRequest)), bytes \(whole(honestBytesPerRequest))"
    }
}
