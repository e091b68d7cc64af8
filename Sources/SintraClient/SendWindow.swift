/// How many requests a `ClientMultiplexer` has outstanding at the replicas at once, learned from their
/// `overloaded` refusals (additive increase, multiplicative decrease, as TCP's congestion window; Jacobson,
/// "Congestion avoidance and control", SIGCOMM 1988).
///
/// Why: a replica takes at most `requestsInFlightMax` unanswered requests per client connection and refuses
/// the rest `overloaded` (retryable). Without a window, a multiplexer with more slots than that limit sends
/// every request at once; the excess is refused and retried with growing pauses, and a request whose pause
/// has grown loses the freed places to new requests sent at once: at a limit of 256 with 1,000 slots, p99
/// latency was 8.7 s and retries 25,000 in 20 s. With the window, requests beyond it wait in the
/// multiplexer, oldest first, and go out as answers free places: refusals stop after the first burst, and
/// no request waits behind younger ones.
///
/// The window shrinks on each `overloaded` verdict to one less than the requests then outstanding (a burst
/// of k refusals over a limit L brings it from L + k to about L), and grows by one after a window's worth
/// of answered requests, so it follows a limit that is raised or that it underestimated.
public struct SendWindow: Sendable, Equatable {
    /// Requests outstanding at most; nil while no `overloaded` refusal came (or the window grew past
    /// `ceiling`).
    public private(set) var limit: Int?
    /// The window that means no limit: the multiplexer's slot count (it never has more outstanding).
    public let ceiling: Int
    /// Answers since the last increase.
    private var answeredSinceIncrease = 0

    public init(ceiling: Int) {
        precondition(ceiling >= 1, "at least one request")
        self.ceiling = ceiling
    }

    /// Whether one more request may go out with `outstanding` outstanding.
    public func admits(outstanding: Int) -> Bool {
        limit.map { outstanding < $0 } ?? true
    }

    /// A request was refused `overloaded` with `outstanding` requests outstanding (itself included).
    public mutating func overloaded(outstanding: Int) {
        limit = max(1, min(limit ?? ceiling, outstanding - 1))
        answeredSinceIncrease = 0
    }

    /// A request got its result.
    public mutating func answered() {
        guard let current = limit else { return }
        answeredSinceIncrease += 1
        guard answeredSinceIncrease >= current else { return }
        answeredSinceIncrease = 0
        limit = current + 1 >= ceiling ? nil : current + 1
    }
}
