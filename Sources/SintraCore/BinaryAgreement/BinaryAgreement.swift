import SintraCrypto

/// Randomized binary Byzantine agreement "ABBA" of Cachin, Kursawe and Shoup ("Random oracles in
/// Constantinople: practical asynchronous Byzantine agreement using cryptography", PODC 2000; J. Cryptology
/// 18(3), 2005, §5 — the section number is unconfirmed, PROTOCOLS.md §5).
///
/// Guarantees, for n parties of which at most t < n/3 are Byzantine, over a fully asynchronous network:
/// - agreement: no two honest parties decide differently;
/// - validity: if every honest party proposes b, only b can be decided;
/// - termination: with probability 1 every honest party decides, in an expected constant number of rounds;
/// - integrity: each honest party decides once.
///
/// The protocol (steps 0–3 and the justification rules are [confirmed] in PROTOCOLS.md §5):
/// 0. pre-process: every party signs and sends its input;
/// 1. pre-vote: in round 1 the majority of the first 2t + 1 pre-processes, justified by t + 1 signed
///    pre-processes for it; in round r > 1, a *hard* pre-vote for b if a round-(r − 1) main-vote for b was
///    seen (justified by n − t round-(r − 1) pre-votes for b), else a *soft* pre-vote for the round-(r − 1)
///    coin (justified by n − t round-(r − 1) abstaining main-votes);
/// 2. main-vote: b if the first n − t pre-votes all say b (justified by those n − t signatures), otherwise
///    abstain (justified by one valid justification for each value);
/// 3. after n − t main-votes: decide b if they all say b, release this round's coin share, and go on.
///
/// Thresholds, each named once in `GroupConfiguration`:
/// - 2t + 1 pre-processes (odd, so a strict majority exists; 2t + 1 ≤ n − t, so waiting ends). The majority
///   has at least t + 1 members, which is `weakQuorum`: a certificate of t + 1 pre-processes for b contains an
///   honest one, so if every honest party proposes b no round-1 pre-vote for ¬b can be justified (validity).
///   The paper's count for its pre-processing threshold scheme S′ is unconfirmed; t + 1 is the smallest that
///   gives validity.
/// - n − t (`quorum`) pre-votes, main-votes and signatures in every other certificate: the most a party can
///   wait for. Two (n − t)-sets share at least n − 2t ≥ t + 1 parties, one of them honest, and honest parties
///   vote once per round, so certificates QC_q("pre-vote", r, 0) and QC_q("pre-vote", r, 1) cannot both exist;
///   hence at most one value is main-voted per round, and no two parties decide differently.
/// - t + 1 (`weakQuorum`) coin shares: t corrupted parties alone cannot compute the coin, and any t + 1 valid
///   shares give the same value.
///
/// Pitfalls followed (DESIGN.md, PROTOCOLS.md §5):
/// - The round-r coin share is released only after this party main-voted and collected n − t round-r
///   main-votes (the later of the two candidate points; CKS's exact point is unconfirmed). Every party that
///   completes a round releases its share, even if it does not need the coin, or soft pre-votes of others
///   could not be validated.
/// - Every vote is checked for being properly justified before it counts; only the first vote of each kind per
///   sender and round counts; certificates count distinct signers only (`QuorumCertificate.verify`).
/// - Termination uses the Sintra extension (also used by maidsafe/sn_consensus, not part of CKS, which has a
///   decided party take part in one more round): on deciding b in round r a party broadcasts
///   `decided(r, b, QC_q("main-vote", r, b))` and stops. The certificate proves that n − t parties main-voted b
///   in round r, so every honest party that completes round r would decide b in round r + 1; a receiver
///   decides b at once, re-broadcasts `decided` once, and stops. So a party that stops never leaves another
///   one waiting for it.
///
/// Coin shares and `decided` carry no Ed25519 signature of their own: a coin share's Chaum–Pedersen proof
/// binds it to its party's verification key and to the coin name (which binds the path and round), and the
/// certificate in `decided` is made of main-vote signatures; the link authenticates the sender of both.
public enum BinaryAgreement {
    /// Messages for rounds up to `round + futureRoundWindow` are held until their round comes; later ones are
    /// dropped with a `Fault(.outOfWindow)` (DESIGN.md: buffers for future rounds are bounded).
    ///
    /// An honest party can legitimately be that far ahead: n − t parties can go on without the others. A
    /// party that drops an honest message can then be missing it when it reaches that round. This stalls
    /// nobody as long as someone decides (its `decided` message finishes everyone), and the parties that go
    /// on without it decide with probability at least about 1/2 per round, so the window makes such a stall
    /// improbable (about 2^−window), not impossible. A retransmission mechanism in the shell would close it.
    public static let futureRoundWindow = 16

    /// The most messages one instance holds in its buffer (future rounds, and current-round votes waiting for
    /// the previous round's coin). One slot per (round, kind, sender) bounds it anyway by
    /// 3 · n · (futureRoundWindow + 1); this cap binds only for n ≥ 21. When full, the message of the farthest
    /// round is dropped first, so the next rounds' messages are kept.
    public static let bufferedMessageCountMax = 1024

    static let preProcessDomain = "sintra-v1/abba/pre-process"
    static let preVoteDomain = "sintra-v1/abba/pre-vote"
    static let mainVoteDomain = "sintra-v1/abba/main-vote"
    static let coinDomain = "sintra-v1/abba/coin"

    /// The statement a pre-process signature covers: ("pre-process", P, b).
    package static func preProcessStatement(path: InstancePath, value: Bool) -> SignedStatement {
        SignedStatement(domain: preProcessDomain, path: path.description, payload: [value ? 1 : 0])
    }

    /// The statement a pre-vote signature covers: ("pre-vote", P, r, b).
    package static func preVoteStatement(path: InstancePath, round: Int, value: Bool) -> SignedStatement {
        SignedStatement(domain: preVoteDomain, path: path.description, payload: roundPayload(round, value ? 1 : 0))
    }

    /// The statement a main-vote signature covers: ("main-vote", P, r, v), v ∈ {0, 1, abstain}; `nil` is
    /// abstain.
    package static func mainVoteStatement(path: InstancePath, round: Int, value: Bool?) -> SignedStatement {
        SignedStatement(domain: mainVoteDomain, path: path.description, payload: roundPayload(round, voteByte(value)))
    }

    /// The name of the round-r coin: a domain tag, the canonical encoding of P, and r (PROTOCOLS.md §1), so
    /// no coin value is shared between instances or rounds.
    package static func coinName(path: InstancePath, round: Int) -> [UInt8] {
        precondition(round >= 1, "rounds start at 1")
        var writer = ByteWriter()
        writer.writeVariable(Array(coinDomain.utf8))
        path.encode(into: &writer)
        writer.write(UInt64(round))
        return writer.bytes
    }

    /// 0 and 1 for the values, 2 for abstain (in statements and on the wire).
    static func voteByte(_ value: Bool?) -> UInt8 {
        switch value {
        case false?: return 0
        case true?: return 1
        case nil: return 2
        }
    }

    private static func roundPayload(_ round: Int, _ value: UInt8) -> [UInt8] {
        precondition(round >= 1, "rounds start at 1")
        var writer = ByteWriter(capacity: 9)
        writer.write(UInt64(round))
        writer.write(value)
        return writer.bytes
    }
}
