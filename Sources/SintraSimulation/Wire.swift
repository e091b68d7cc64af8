import SintraCore
import SintraCrypto

/// A frame as the receiver decoded it: a message of this instance, or a fault against the link's sender.
enum Decoded<Message> {
    case message(Message)
    case fault(Fault)
}

/// The simulated link layer: every message is encoded, framed with the cluster identifier, and decoded
/// again at the receiver, exactly as a replica would. A frame that fails any check becomes a fault
/// against the link's sender (the link authenticates who sent the bytes, whatever the frame claims).
struct SimulatedWire: Sendable {
    let clusterIdentifier: [UInt8]
    let path: InstancePath
    let limits: WireLimits

    /// The frame that `sender` puts on its link for `body`, for this instance or another one.
    func frame(_ body: [UInt8], from sender: Int, path: InstancePath? = nil) -> [UInt8] {
        Frame(clusterIdentifier: clusterIdentifier, sender: sender, path: path ?? self.path, body: body).encoded
    }

    func frame<Message: WireMessage>(_ message: Message, from sender: Int) -> [UInt8] {
        frame(message.encoded, from: sender)
    }

    /// Decodes a frame that arrived on `sender`'s link into a message of this instance.
    func decode<Message: WireMessage>(_ bytes: [UInt8], from sender: Int, as type: Message.Type)
        -> Decoded<Message>
    {
        let frame: Frame
        do {
            frame = try Frame(encoded: bytes, clusterIdentifier: clusterIdentifier, limits: limits)
        } catch {
            return .fault(Fault(node: sender, path: path, kind: .malformed, detail: "frame: \(error)"))
        }
        guard frame.sender == sender else {
            return .fault(
                Fault(node: sender, path: path, kind: .notAllowed, detail: "frame claims sender \(frame.sender)"))
        }
        guard frame.path == path else {
            return .fault(
                Fault(node: sender, path: path, kind: .notAllowed, detail: "frame for unknown instance \(frame.path)"))
        }
        do {
            return .message(try Message(encoded: frame.body, limits: limits))
        } catch {
            return .fault(Fault(node: sender, path: path, kind: .malformed, detail: "message: \(error)"))
        }
    }

    /// The body of a frame from `sender` for this instance, if the header is sound (for Byzantine relaying).
    func body(of bytes: [UInt8]) -> [UInt8]? {
        guard let frame = try? Frame(encoded: bytes, clusterIdentifier: clusterIdentifier, limits: limits),
            frame.path == path
        else { return nil }
        return frame.body
    }

    /// One garbage frame from `sender`: random bytes, a random body, a mutated `body`, a frame of another
    /// cluster, version, claimed sender or instance. Every kind must end in a fault, never a crash.
    func garbage(from sender: Int, body: [UInt8]?, replicas: Int, random: inout ProtocolRandom) -> [UInt8] {
        func randomBytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) } }
        let valid = body ?? [UInt8(random.next() % 8)] + randomBytes(Int(random.next() % 40))
        switch random.next() % 8 {
        case 0:
            return randomBytes(Int(random.next() % 96))
        case 1:
            return frame([UInt8(random.next() % 8)] + randomBytes(Int(random.next() % 120)), from: sender)
        case 2:
            // One flipped bit, somewhere in the body.
            var mutated = valid
            if mutated.isEmpty { mutated = [0] }
            let index = Int(random.next() % UInt64(mutated.count))
            mutated[index] ^= UInt8(1) << (random.next() % 8)
            return frame(mutated, from: sender)
        case 3:
            // Truncated or extended body.
            var mutated = valid
            if !mutated.isEmpty && random.next() % 2 == 0 {
                mutated.removeLast(1 + Int(random.next() % UInt64(mutated.count)))
            } else {
                mutated += randomBytes(1 + Int(random.next() % 8))
            }
            return frame(mutated, from: sender)
        case 4:
            return Frame(clusterIdentifier: randomBytes(16), sender: sender, path: path, body: valid).encoded
        case 5:
            var bytes = frame(valid, from: sender)
            bytes[0] = Frame.version &+ 1 &+ UInt8(random.next() % 200)
            return bytes
        case 6:
            let claimed = 1 + Int(random.next() % UInt64(replicas))
            return frame(valid, from: claimed)
        default:
            return frame(valid, from: sender, path: path.child("other", random.next() % 4))
        }
    }
}
