import Foundation
import SintraReplica

/// How a client sends a request again after the replicas refused it for a retryable reason
/// (`RefusalReason.isRetryable`: queue-full, unavailable, overloaded), before it gives up with
/// `SintraClient.Failure.refused`.
///
/// Sending the same signed request again (the same sequence number, the same bytes) is safe: a replica that
/// holds it answers the copy as a duplicate (its reply follows execution, once), one that executed it
/// meanwhile answers with its cached reply (`RequestExecutor.repeatedOutcome`; a client's last request is
/// never stale), and one that refused it for lack of room takes it now if it has room. The request is never
/// executed twice: replicas execute each (client, sequence) once.
///
/// The pauses grow exponentially (`initialDelaySeconds` · `multiplier`^(k − 1) before retry k, at most
/// `delayMaxSeconds`) with "equal jitter": each pause is drawn uniformly from the upper half of its bound.
/// Growth takes load off replicas that said they are overloaded; jitter keeps the clients refused in the
/// same moment from coming back in the same moment; the lower half is left out so that no retry comes at
/// once, which would only draw the same refusal. All retries stay within the request's overall timeout: a
/// retry that could not start before it ends is not made, and the request fails with its last refusal.
public struct RetryPolicy: Sendable, Equatable {
    /// Sends of one request at most, the first included: 1 turns retrying off.
    public var attemptsMax: Int
    /// The bound of the first pause.
    public var initialDelaySeconds: Double
    /// The factor between successive bounds.
    public var multiplier: Double
    /// The largest bound.
    public var delayMaxSeconds: Double

    public init(
        attemptsMax: Int = RetryPolicy.attemptsMaxDefault, initialDelaySeconds: Double = 0.05, multiplier: Double = 2,
        delayMaxSeconds: Double = 1
    ) {
        precondition(attemptsMax >= 1, "a request is sent at least once")
        precondition(initialDelaySeconds >= 0 && delayMaxSeconds >= initialDelaySeconds, "delays are ordered")
        precondition(multiplier >= 1, "pauses do not shrink")
        self.attemptsMax = attemptsMax
        self.initialDelaySeconds = initialDelaySeconds
        self.multiplier = multiplier
        self.delayMaxSeconds = delayMaxSeconds
    }

    /// Sends of a request at most by default: with the default pauses (0.05 s doubling up to 1 s), more than
    /// a 10 s timeout holds, so the timeout is what ends retrying.
    public static let attemptsMaxDefault = 32

    /// What `SintraClient`, `ClientMultiplexer`, `sintra client` and `sintra bench` use.
    public static let `default` = RetryPolicy()

    /// No retries: a retryable refusal fails the request at once.
    public static let never = RetryPolicy(attemptsMax: 1)

    /// The pause before sending again after `attempts` sends, if there is to be another: nil once
    /// `attemptsMax` sends were made, or if the pause would not end within `remainingSeconds` of the timeout.
    public func delaySeconds(
        afterAttempts attempts: Int, remainingSeconds: Double, using generator: inout some RandomNumberGenerator
    ) -> Double? {
        guard attempts < attemptsMax else { return nil }
        let exponent = Double(min(attempts - 1, 64))
        let bound = min(delayMaxSeconds, initialDelaySeconds * pow(multiplier, exponent))
        let delay = bound / 2 + Double.random(in: 0...(bound / 2), using: &generator)
        return delay < remainingSeconds ? delay : nil
    }

    /// `delaySeconds(afterAttempts:remainingSeconds:using:)` with the system's generator.
    public func delaySeconds(afterAttempts attempts: Int, remainingSeconds: Double) -> Double? {
        var generator = SystemRandomNumberGenerator()
        return delaySeconds(afterAttempts: attempts, remainingSeconds: remainingSeconds, using: &generator)
    }
}
