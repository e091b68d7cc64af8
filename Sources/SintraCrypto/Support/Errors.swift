/// A byte string from outside (a peer, a client, a file) that does not decode to a valid value.
///
/// Decoders throw this instead of trapping. `context` names what was being decoded, so a log line or a
/// recorded fault says which field of which message was bad.
public struct DecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why decoding failed. New cases may be added.
    public enum Reason: Hashable, Sendable {
        case wrongLength(expected: Int, actual: Int)
        case tooLong(maximum: Int, actual: Int)
        case truncated
        case trailingBytes(count: Int)
        case nonCanonicalScalar
        case nonCanonicalElement
        case invalidElement
        case identityElement
        case invalidHex
        case invalidValue(String)
    }

    public let reason: Reason
    public let context: String

    public init(_ reason: Reason, in context: String) {
        self.reason = reason
        self.context = context
    }

    public var description: String {
        switch reason {
        case .wrongLength(let expected, let actual):
            return "\(context): expected \(expected) bytes, got \(actual)"
        case .tooLong(let maximum, let actual):
            return "\(context): \(actual) bytes exceeds the maximum of \(maximum)"
        case .truncated:
            return "\(context): input ends early"
        case .trailingBytes(let count):
            return "\(context): \(count) unexpected trailing bytes"
        case .nonCanonicalScalar:
            return "\(context): scalar is not below the group order"
        case .nonCanonicalElement:
            return "\(context): not a canonical ristretto255 encoding"
        case .invalidElement:
            return "\(context): not a valid ristretto255 element"
        case .identityElement:
            return "\(context): the identity element is not allowed here"
        case .invalidHex:
            return "\(context): not lowercase or uppercase hexadecimal"
        case .invalidValue(let detail):
            return "\(context): \(detail)"
        }
    }
}
