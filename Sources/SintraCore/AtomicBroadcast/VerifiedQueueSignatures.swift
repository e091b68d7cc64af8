import Foundation
import SintraCrypto

extension AtomicBroadcast {
    /// The queue signatures one party has verified, by round: each member's signature on its `a-queue`
    /// statement of a round, as the party checked it on receipt (`Instance.handle`, `.queue`) or inside a
    /// proposal's vector (`validVector`).
    ///
    /// Why: every round each party receives the n members' queues directly and checks each signature, and
    /// then checks n proposals, each a vector of n − t of the same queues, signatures included: (n − t + 1)·n
    /// checks of n distinct signatures, 4.3 % of a replica's samples at 16 clients. With this record, a
    /// vector's queue that carries a signature already verified here on the same statement is not checked
    /// again, so usually none of a vector's signatures is.
    ///
    /// An entry holds the member's signature and the exact encoded requests it covers (`encodeRequests`, the
    /// bytes whose digest the statement signs), so a hit is found by comparing bytes rather than by hashing
    /// the queue again: with large queues, hashing each vector's queues to look them up cost as much SHA-256
    /// as receiving them (2 % of a replica's samples at 32 clients × 8 KB). The path and the round are fixed
    /// by the record and the lookup; the statement is the same exactly when the bytes are.
    ///
    /// Soundness: an entry is stored only after its signature verified on the statement over these bytes,
    /// under the member's key, with the cofactored rule the vector check uses (`SignatureBatch`); a hit —
    /// same path, round, member, signature and request bytes — therefore stands for the same verdict, and
    /// what the predicate accepts is unchanged. Bounded memory: one entry per member and round (the first
    /// verified one; an honest member signs one queue per round, a second one is simply checked each time),
    /// kept for the rounds the instance keeps queues of (`forget(below:)` runs with its garbage collection).
    ///
    /// A reference shared by the instance and its agreements' predicates (closures fixed when an agreement
    /// is made, that cannot read the instance's later state); the lock makes it safe wherever they run.
    package final class VerifiedQueueSignatures: @unchecked Sendable {
        private struct Entry {
            let signature: [UInt8]
            let requests: [UInt8]
        }

        /// The atomic broadcast instance whose queue statements the entries are about.
        package let path: InstancePath
        private let lock = NSLock()
        private var byRound: [UInt64: [Int: Entry]] = [:]

        package init(path: InstancePath) {
            self.path = path
        }

        /// Whether `member`'s `signature` on its queue of `round` at `path`, with encoded requests `requests`
        /// (`encodeRequests`), was verified here.
        package func contains(
            member: Int, signature: [UInt8], requests: UnsafeRawBufferPointer, round: UInt64, path: InstancePath
        ) -> Bool {
            guard path == self.path else { return false }
            return lock.withLock {
                guard let entry = byRound[round]?[member], entry.signature == signature,
                    entry.requests.count == requests.count
                else { return false }
                return entry.requests.withUnsafeBytes { stored in
                    requests.isEmpty || memcmp(stored.baseAddress!, requests.baseAddress!, requests.count) == 0
                }
            }
        }

        /// Records a verified signature (see the type's soundness note: only after it verified). Keeps the
        /// member's first entry of the round.
        package func insert(member: Int, signature: [UInt8], requests: [UInt8], round: UInt64, path: InstancePath) {
            guard path == self.path else { return }
            lock.withLock {
                if byRound[round]?[member] == nil {
                    byRound[round, default: [:]][member] = Entry(signature: signature, requests: requests)
                }
            }
        }

        /// Forgets the rounds below `round`.
        package func forget(below round: UInt64) {
            lock.withLock { byRound = byRound.filter { $0.key >= round } }
        }

        /// Entries held, all rounds together.
        package var count: Int { lock.withLock { byRound.values.reduce(0) { $0 + $1.count } } }
    }
}
