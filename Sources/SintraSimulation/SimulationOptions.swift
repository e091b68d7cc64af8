/// Knobs of the ordering protocols' scenarios (`abc`, `kv`) for `sintra sim`; nil leaves the choice to
/// the seed. Other protocols ignore them.
public struct SimulationOptions: Sendable, Hashable {
    /// Requests per run (abc), or requests per client (kv).
    public var requests: Int?
    /// The cap on requests per queue (the batch size).
    public var batchCountMax: Int?

    public init(requests: Int? = nil, batchCountMax: Int? = nil) {
        self.requests = requests
        self.batchCountMax = batchCountMax
    }
}
