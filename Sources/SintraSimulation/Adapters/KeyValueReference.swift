import Crypto
import SintraCore
import SintraCrypto
import SintraReplica

/// What one replica did with one delivered request of the `kv` simulation.
public enum KeyValueReply: Sendable, Equatable {
    /// Executed now, with this result (a `KeyValueStore.Result` encoding).
    case executed([UInt8])
    /// The client's latest request again: the cached result is sent again.
    case duplicate([UInt8])
    /// Older than the client's latest request: no reply.
    case stale
    /// The client's latest request again, but its result was longer than replicas keep
    /// (`RequestExecutor.cachedReplyBytesMax`): no reply.
    case replyNotKept
    /// Not a `ClientRequest` at all: ignored.
    case undecodable
    /// A `ClientRequest` not signed by the holder of its key: skipped.
    case unauthentic

    /// The result a client receives, if any.
    public var result: [UInt8]? {
        switch self {
        case .executed(let result), .duplicate(let result): result
        case .stale, .replyNotKept, .undecodable, .unauthentic: nil
        }
    }

    func encode(into writer: inout ByteWriter) {
        switch self {
        case .executed(let result):
            writer.write(UInt8(0))
            writer.writeVariable(result)
        case .duplicate(let result):
            writer.write(UInt8(1))
            writer.writeVariable(result)
        case .stale: writer.write(UInt8(2))
        case .undecodable: writer.write(UInt8(3))
        case .unauthentic: writer.write(UInt8(4))
        case .replyNotKept: writer.write(UInt8(5))
        }
    }
}

/// An independent sequential execution of SintraKV requests, for the checkers: a dictionary and a table of
/// each client's last sequence number and result, written from the specification (exactly once per
/// (client, sequence); a repeat of the latest gets its result again if it is at most
/// `RequestExecutor.cachedReplyBytesMax` long, else nothing; an older one gets nothing; put, get,
/// delete, compare-and-swap and scan as `KeyValueStore.Operation` documents them). It shares only the
/// operation and result encodings with `KeyValueStore` and `RequestExecutor`, which it checks.
///
/// Which requests are authentic it takes from the scenario (the requests whose key holders signed them),
/// not from signature verification, so it also checks that replicas skip exactly the forged ones.
struct KeyValueReference {
    let authentic: Set<[UInt8]>
    private var entries: [[UInt8]: [UInt8]] = [:]
    private var last: [[UInt8]: (sequence: UInt64, result: [UInt8])] = [:]

    init(authentic: Set<[UInt8]>) {
        self.authentic = authentic
    }

    mutating func execute(_ bytes: [UInt8]) -> KeyValueReply {
        guard let request = try? ClientRequest(encoded: bytes) else { return .undecodable }
        guard authentic.contains(bytes) else { return .unauthentic }
        if let previous = last[request.client], request.sequence <= previous.sequence {
            guard request.sequence == previous.sequence else { return .stale }
            return previous.result.count <= RequestExecutor<KeyValueStore>.cachedReplyBytesMax
                ? .duplicate(previous.result) : .replyNotKept
        }
        let result = perform(request.operation).encoded
        last[request.client] = (request.sequence, result)
        return .executed(result)
    }

    private mutating func perform(_ bytes: [UInt8]) -> KeyValueStore.Result {
        let operation: KeyValueStore.Operation
        do {
            operation = try KeyValueStore.Operation(encoded: bytes)
        } catch {
            return .invalid(error.description)
        }
        return perform(operation, scanBytesMax: KeyValueStore.scanBytesMax)
    }

    /// One operation; a scan returns at most `scanBytesMax` bytes of entries (4 bytes of length and the bytes
    /// of each key and value), and a batch's budget refusal when not even the first entry in range fits.
    private mutating func perform(_ operation: KeyValueStore.Operation, scanBytesMax: Int) -> KeyValueStore.Result {
        switch operation {
        case .put(let key, let value):
            entries[key] = value
            return .ok
        case .get(let key):
            return entries[key].map { .value($0) } ?? .notFound
        case .delete(let key):
            return entries.removeValue(forKey: key) == nil ? .notFound : .ok
        case .compareAndSwap(let key, let expected, let new):
            guard entries[key] == expected else { return .conflict(current: entries[key]) }
            entries[key] = new
            return .ok
        case .scan(let from, let to, let limit):
            let keys = entries.keys.sorted { $0.lexicographicallyPrecedes($1) }.filter {
                !$0.lexicographicallyPrecedes(from) && $0.lexicographicallyPrecedes(to)
            }
            var taken = [(key: [UInt8], value: [UInt8])]()
            var bytes = 0
            for key in keys.prefix(min(max(limit, 0), KeyValueStore.scanCountMax)) {
                let value = entries[key]!
                bytes += 8 + key.count + value.count
                if bytes > scanBytesMax {
                    return taken.isEmpty ? Self.overBudget : .entries(taken)
                }
                taken.append((key, value))
            }
            return .entries(taken)
        case .batch(let operations):
            // The budget rule of `Operation.batch`: results share 1 MiB − 1,024 bytes (each with 4 bytes of
            // length), and each operation leaves room for the refusal of every one after it.
            var left = KeyValueStore.scanBytesMax
            var results = [KeyValueStore.Result]()
            for (index, operation) in operations.enumerated() {
                let room = left - (operations.count - index - 1) * (Self.overBudget.encoded.count + 4)
                var result: KeyValueStore.Result
                switch operation {
                case .compareAndSwap where room < KeyValueStore.valueBytesMax + 10:
                    result = Self.overBudget
                case .scan:
                    result = perform(operation, scanBytesMax: min(KeyValueStore.scanBytesMax, room - 9))
                case .batch:
                    result = .invalid("a batch inside a batch")
                default:
                    result = perform(operation, scanBytesMax: KeyValueStore.scanBytesMax)
                    if case .get = operation, result.encoded.count + 4 > room { result = Self.overBudget }
                }
                left -= result.encoded.count + 4
                results.append(result)
            }
            return .batch(results)
        }
    }

    static let overBudget = KeyValueStore.Result.invalid("over the batch's reply budget")

    /// SHA-256 of the state in the canonical snapshot layout: the entry count, then each key and value,
    /// length-prefixed, in increasing key order.
    var digest: [UInt8] {
        var writer = ByteWriter()
        writer.write(UInt64(entries.count))
        for key in entries.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            writer.writeVariable(key)
            writer.writeVariable(entries[key]!)
        }
        return Array(SHA256.hash(data: writer.bytes))
    }

    /// Replays the longest honest sequence of rounds and checks every honest replica's replies and state
    /// digests against it, then what each honest client accepts: the replies of the honest replicas, after
    /// the Byzantine replicas' forged ones, through a `ReplyCollector` (t + 1 equal replies), must give the
    /// result of the sequential execution, for every request of every honest client.
    static func check(
        _ rounds: [[KeyValueRound]], honest: [Int], byzantine: [Int], faulty: Int,
        clients: [KeyValueAdapter.Scenario.Client], authentic: Set<[UInt8]>, forgedResult: [UInt8]
    ) -> [Checkers.Finding] {
        guard let longest = rounds.max(by: { $0.count < $1.count }) else { return [] }
        var reference = KeyValueReference(authentic: authentic)
        var expected = [(replies: [KeyValueReply], digest: [UInt8])]()
        var firstResult = [[UInt8]: KeyValueReply]()
        for round in longest {
            let replies = round.requests.map { request in
                let reply = reference.execute(request)
                if firstResult[request] == nil { firstResult[request] = reply }
                return reply
            }
            expected.append((replies, reference.digest))
        }
        var findings = [Checkers.Finding]()
        for (node, nodeRounds) in zip(honest, rounds) {
            for (index, round) in nodeRounds.enumerated() where round.replies != expected[index].replies {
                findings.append(.init(
                    kind: .validity,
                    detail: "node \(node)'s replies in round \(round.round) differ from the sequential reference's"))
                break
            }
            for (index, round) in nodeRounds.enumerated() where round.digest != expected[index].digest {
                findings.append(.init(
                    kind: .validity,
                    detail: "node \(node)'s state after round \(round.round) differs from the sequential reference's"))
                break
            }
        }
        for client in clients {
            for request in client.requests {
                let bytes = request.encoded
                guard let reply = firstResult[bytes] else { continue }  // never delivered: lost-request says so
                guard case .executed(let result) = reply else {
                    findings.append(.init(
                        kind: .lostRequest,
                        detail: "an honest client's request \(request.sequence) was delivered but not executed "
                            + "(\(reply))"))
                    continue
                }
                var collector = ReplyCollector(faulty: faulty, sequence: request.sequence)
                for replica in byzantine {
                    let forged = ClientReply(client: request.client, sequence: request.sequence, result: forgedResult)
                    _ = collector.add(forged, from: replica)
                }
                var deliveredEverywhere = true
                for (node, nodeRounds) in zip(honest, rounds) {
                    let answers = nodeRounds.flatMap { round in
                        zip(round.requests, round.replies).filter { $0.0 == bytes }.map(\.1)
                    }
                    deliveredEverywhere = deliveredEverywhere && !answers.isEmpty
                    for answer in answers.compactMap(\.result) {
                        _ = collector.add(
                            ClientReply(client: request.client, sequence: request.sequence, result: answer), from: node)
                    }
                }
                if let accepted = collector.accepted, accepted != result {
                    findings.append(.init(
                        kind: .validity,
                        detail: "a client accepted \(Hex.encode(accepted)) for request \(request.sequence), the "
                            + "sequential execution gives \(Hex.encode(result))"))
                } else if collector.accepted == nil && deliveredEverywhere {
                    findings.append(.init(
                        kind: .lostRequest,
                        detail: "a client got no t + 1 equal results for request \(request.sequence)"))
                }
            }
        }
        return Array(findings.prefix(4))
    }
}
