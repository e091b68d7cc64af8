import SintraCrypto

extension BinaryAgreement {
    /// Valid votes of one kind (in one round): the first of each sender, in the order they were counted.
    ///
    /// The protocol acts on "the first n − t" votes it holds, so the arrival order is kept; lookups go by
    /// sender, and nothing is ever produced by iterating the dictionary.
    struct VoteTable<Record: Sendable>: Sendable {
        private var records: [Int: Record] = [:]
        private(set) var arrivalOrder: [Int] = []

        var count: Int { arrivalOrder.count }

        subscript(sender: Int) -> Record? { records[sender] }

        mutating func insert(_ record: Record, from sender: Int) {
            precondition(records[sender] == nil, "only the first vote of a sender counts")
            records[sender] = record
            arrivalOrder.append(sender)
        }

        /// The first `count` votes counted, in arrival order.
        func first(_ count: Int) -> [(sender: Int, record: Record)] {
            arrivalOrder.prefix(count).map { ($0, records[$0]!) }
        }
    }

    /// A counted pre-process: the sender's value and its signature on ("pre-process", P, value).
    struct PreProcessRecord: Sendable {
        let value: Bool
        let signature: [UInt8]
        /// The message as received, to tell a repeat from an equivocation.
        let message: Message
    }

    /// A counted, properly justified pre-vote.
    struct PreVoteRecord: Sendable {
        let value: Bool
        let justification: PreVoteJustification
        let signature: [UInt8]
        let message: Message
    }

    /// A counted, properly justified main-vote.
    struct MainVoteRecord: Sendable {
        let vote: MainVote
        let signature: [UInt8]
        let message: Message
    }

    /// What one round's coin share did to the round.
    enum CoinShareOutcome {
        /// Verified and counted (the coin may now be known).
        case counted
        /// Not needed (the coin is known) or a repeat.
        case ignored
        /// The sender already gave a different share for this round.
        case equivocation
        /// The share does not verify.
        case invalid(String)
    }

    /// Everything one party holds about one round.
    struct RoundState: Sendable {
        let number: Int
        var preVotes = VoteTable<PreVoteRecord>()
        var mainVotes = VoteTable<MainVoteRecord>()
        var coinShares = VoteTable<ThresholdCoin.VerifiedShare>()
        /// coin(number), once t + 1 valid shares are combined.
        var coin: Bool?
        /// This party's own share of coin(number), valid by construction
        /// (`ThresholdSecretShare.verifiedCoinShare`): counted without a proof check when it comes back.
        var ownCoinShare: ThresholdCoin.VerifiedShare?

        init(number: Int) {
            self.number = number
        }

        /// This round without its votes, once the next round has begun: only the coin is still needed there
        /// (to check soft pre-votes of the next round).
        var coinOnly: RoundState {
            var copy = RoundState(number: number)
            copy.coinShares = coinShares
            copy.coin = coin
            copy.ownCoinShare = ownCoinShare
            return copy
        }

        /// Counts the first valid share of each sender; combines the coin at `key.threshold` (t + 1) shares.
        mutating func receiveCoinShare(
            _ share: ThresholdCoin.Share, from sender: Int, key: ThresholdPublicKey, name: [UInt8]
        ) -> CoinShareOutcome {
            if let first = coinShares[sender] {
                return first.share == share ? .ignored : .equivocation
            }
            guard coin == nil else { return .ignored }
            let verified: ThresholdCoin.VerifiedShare
            if let ownCoinShare, ownCoinShare.share == share {
                verified = ownCoinShare
            } else {
                do {
                    verified = try key.verifyCoinShare(share, name: name)
                } catch {
                    return .invalid("coin share for round \(number): \(error)")
                }
            }
            coinShares.insert(verified, from: sender)
            if coinShares.count >= key.threshold {
                let shares = coinShares.first(coinShares.count).map(\.record)
                do {
                    coin = try key.combineCoin(shares, name: name).bit
                } catch {
                    preconditionFailure("t + 1 verified shares of one coin always combine: \(error)")
                }
            }
            return .counted
        }
    }
}
