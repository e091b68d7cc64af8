/// Knobs of the ordering protocols' scenarios (`abc`, `kv`) for `sintra sim`; nil leaves the choice to
/// the seed. Other protocols ignore them.
public struct SimulationOptions: Sendable, Hashable {
    /// Requests per run (abc), or requests per client (kv).
    public var requests: Int?
    /// The cap on requests per queue (the batch size).
    public var batchCountMax: Int?
    /// Whether replicas journal their atomic broadcast inputs and replay them after a restart
    /// (docs/DURABILITY.md, stage 2); false simulates stage 1 (silent up to the send horizon), to compare.
    public var journaling: Bool
    /// Whether rounds try the leader's fast path first (`AtomicBroadcast.Limits.optimistic`); false runs
    /// every round through agreement, as before the fast path existed.
    public var optimistic: Bool

    public init(requests: Int? = nil, batchCountMax: Int? = nil, journaling: Bool = true, optimistic: Bool = true) {
        self.requests = requests
        self.batchCountMax = batchCountMax
        self.journaling = journaling
        self.optimistic = optimistic
    }
}
