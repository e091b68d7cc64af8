import SintraCore
import SintraCrypto

/// The "split and steer" scheduler for ABBA (PROTOCOLS.md §5, binding caution): an adversary that reads
/// every coin as early as it can and then orders deliveries so that the honest nodes split against it.
///
/// - It learns coin(r) as soon as t + 1 valid shares of it exist: it verifies the shares in flight and adds
///   the shares of the Byzantine members, whose keys the coalition holds, so one honest share is enough.
/// - A fast group (the lower t + 1 honest nodes) runs ahead with the Byzantine nodes, which together make
///   n − t: the laggards' messages reach it last. Its members hear the pre-processes in different orders,
///   so that their round-1 pre-votes split. Laggards get nothing of round r until coin(r) is known.
/// - Once coin(r) = c is known (the first fast node completed round r, with abstentions), round-r votes for
///   ¬c go first, abstentions late and votes for c last (nodes still in round r wait for a main-vote for
///   ¬c rather than complete the round with abstentions), so that the value main-voted in round r, if any,
///   is ¬c (the binding caution's b* = ¬coin(r)), and every node but the first hard-pre-votes ¬c in round
///   r + 1 while the first soft-pre-votes c: the fast group is split again, and the next coin decides
///   whether the adversary can repeat this (it can if coin(r + 1) = c).
/// - `decided` messages go last; Byzantine nodes hear everything first.
/// Every message is still delivered eventually: ranks only order what is pending.
struct BinaryAgreementSteering: Steering {
    typealias Message = BinaryAgreement.Message

    /// Coins further ahead are not worth the share verifications (honest rounds never get there).
    static let roundMax = 64

    let context: SimulationContext
    /// `laggard[node]`: whether the node is an honest node outside the fast group.
    private let laggard: [Bool]
    /// `fastPosition[node]`: the node's position in the fast group, if it is in it.
    private let fastPosition: [Int?]
    /// coin(r) once known.
    private var coins: [Int: Bool] = [:]
    /// (round, sender) pairs whose share was already examined.
    private var examined: Set<[Int]> = []
    private var random: ProtocolRandom

    init(context: SimulationContext) {
        self.context = context
        var laggard = Array(repeating: false, count: context.replicas + 1)
        var fastPosition = [Int?](repeating: nil, count: context.replicas + 1)
        for (position, node) in context.honest.enumerated() {
            if position < context.configuration.weakQuorum {
                fastPosition[node] = position
            } else {
                laggard[node] = true
            }
        }
        self.laggard = laggard
        self.fastPosition = fastPosition
        random = .seeded(context.seed ^ 0x5354_4545_5221)
    }

    /// The coins the scheduler has learnt, by round (for tests).
    var knownCoins: [Int: Bool] { coins }

    mutating func observe(_ message: Message, from sender: Int, to recipient: Int) {
        guard case .coinShare(let round, let share) = message, round <= Self.roundMax, coins[round] == nil,
            !context.isByzantine(sender), share.index == sender, examined.insert([round, sender]).inserted
        else { return }
        let name = BinaryAgreement.coinName(path: context.path, round: round)
        let key = context.configuration.coinKey
        guard let honestShare = try? key.verifyCoinShare(share, name: name) else { return }
        var shares = [honestShare]
        for member in context.byzantine {
            let own = context.keys(of: member).coinShare.coinShare(name: name, using: &random)
            if let verified = try? key.verifyCoinShare(own, name: name) { shares.append(verified) }
        }
        guard shares.count >= context.configuration.weakQuorum,
            let value = try? key.combineCoin(Array(shares.prefix(context.configuration.weakQuorum)), name: name)
        else { return }
        coins[round] = value.bit
    }

    func rank(_ message: Message, from sender: Int, to recipient: Int) -> Int {
        if context.isByzantine(recipient) { return 0 }
        let toLaggard = laggard[recipient]
        // Rounds whose coin is unknown: the fast group runs on without the laggards, which wait. Rounds whose
        // coin is known come first, so that the laggards catch up on them with the values against the coin.
        let unknownCoin = toLaggard ? 8 : (laggard[sender] ? 5 : 3)
        switch message {
        case .preProcess(let value, _):
            if let coin = coins[1] { return value != coin ? 1 : 7 }
            guard let position = fastPosition[recipient] else { return unknownCoin }
            // Fast nodes hear the values in alternating orders, so their round-1 majorities differ.
            return value == (position % 2 == 1) ? 3 : 4
        case .preVote(let round, let value, _, _):
            guard let coin = coins[round] else { return unknownCoin }
            return value != coin ? 1 : 7
        case .mainVote(let round, let vote, _):
            // Nodes that have not completed the round wait for a main-vote for ¬c rather than complete it
            // with abstentions (which would make them soft-pre-vote c).
            guard let coin = coins[round] else { return unknownCoin }
            guard let value = vote.value else { return 6 }
            return value != coin ? 1 : 7
        case .coinShare:
            return toLaggard ? 9 : 2
        case .decided:
            return 10
        }
    }
}
