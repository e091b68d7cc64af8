extension BinaryAgreement {
    /// Round-bound messages that cannot be handled yet: those of future rounds (up to `futureRoundWindow`
    /// ahead), and current-round votes whose justification needs the previous round's coin, which is not known
    /// yet.
    ///
    /// One slot per (round, kind, sender): an honest party sends one message of each kind per round, so a
    /// second, different message for an occupied slot is equivocation and is not kept. That bounds what one
    /// sender can park here by 3 · (futureRoundWindow + 1), and everything by `capacity`; when full, the
    /// message of the farthest round goes first. Handling order is by (round, kind, sender), never by
    /// dictionary order.
    struct MessageBuffer: Sendable {
        struct Slot: Hashable, Comparable, Sendable {
            let round: Int
            /// Coin shares first, so that a coin is known before the votes that need it are checked.
            let kind: UInt8
            let sender: Int

            static func < (a: Slot, b: Slot) -> Bool {
                (a.round, a.kind, a.sender) < (b.round, b.kind, b.sender)
            }
        }

        struct Entry: Sendable {
            let message: Message
            /// True for a current-round vote waiting for the coin of the round before.
            let awaitingCoin: Bool
        }

        enum Outcome {
            /// Kept.
            case held
            /// The same message was already in its slot.
            case duplicate
            /// Another message by the same sender occupies the slot.
            case conflicting
            /// Kept, and the message in `evicted` was dropped to make room.
            case heldEvicting(Slot)
            /// Not kept: the buffer is full of messages of nearer rounds.
            case full
        }

        let capacity: Int
        private var entries: [Slot: Entry] = [:]

        init(capacity: Int) {
            precondition(capacity >= 1, "a buffer needs room for one message")
            self.capacity = capacity
        }

        var count: Int { entries.count }

        static func slot(for message: Message, from sender: Int) -> Slot? {
            switch message {
            case .coinShare(let round, _): return Slot(round: round, kind: 0, sender: sender)
            case .preVote(let round, _, _, _): return Slot(round: round, kind: 1, sender: sender)
            case .mainVote(let round, _, _): return Slot(round: round, kind: 2, sender: sender)
            case .preProcess, .decided: return nil
            }
        }

        /// The message parked in a slot, if any.
        func message(in slot: Slot) -> Message? {
            entries[slot]?.message
        }

        mutating func hold(_ message: Message, in slot: Slot, awaitingCoin: Bool) -> Outcome {
            if let existing = entries[slot] {
                return existing.message == message ? .duplicate : .conflicting
            }
            let entry = Entry(message: message, awaitingCoin: awaitingCoin)
            guard entries.count >= capacity else {
                entries[slot] = entry
                return .held
            }
            // `max()` over the keys is the same whatever the dictionary's order.
            guard let farthest = entries.keys.max(), slot < farthest else { return .full }
            entries[farthest] = nil
            entries[slot] = entry
            assert(entries.count <= capacity)
            return .heldEvicting(farthest)
        }

        /// Removes and returns, in slot order, the messages that can now be handled: those of rounds up to
        /// `round`, except current-round votes still waiting for a coin that is not known.
        mutating func takeReady(round: Int, previousCoinKnown: Bool) -> [(slot: Slot, message: Message)] {
            let ready = entries.keys.filter { slot in
                slot.round <= round && (previousCoinKnown || !entries[slot]!.awaitingCoin)
            }.sorted()
            return ready.map { slot in
                let message = entries.removeValue(forKey: slot)!.message
                return (slot, message)
            }
        }

        /// Drops every message of a round before `round` (they are no longer needed).
        mutating func discard(before round: Int) {
            for slot in entries.keys.filter({ $0.round < round }) {
                entries[slot] = nil
            }
        }

        mutating func removeAll() {
            entries.removeAll()
        }
    }
}
