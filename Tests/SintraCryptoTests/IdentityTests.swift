import Crypto
import Foundation
import Testing

@testable import SintraCrypto

/// Ed25519 (through swift-crypto) against RFC 8032, Wycheproof and C2SP CCTV, and quorum certificates.
@Suite struct IdentityTests {
    @Test func rfc8032Ed25519Vectors() throws {
        let file = try loadVectors("ed25519-rfc8032")
        let vectors = try #require(file["ed25519"] as? [[String: Any]])
        #expect(vectors.count == 5)
        for vector in vectors {
            let seed = hex(try #require(vector["secret_key"] as? String))
            let publicKey = hex(try #require(vector["public_key"] as? String))
            let message = hex(try #require(vector["message"] as? String))
            let signature = hex(try #require(vector["signature"] as? String))
            let privateKey = try Curve25519.Signing.PrivateKey(rawRepresentation: seed)
            #expect(Array(privateKey.publicKey.rawRepresentation) == publicKey)
            // Ed25519 is deterministic: the signature must equal the published one.
            #expect(Array(try privateKey.signature(for: message)) == signature)
            let key = try MemberPublicKey(bytes: publicKey)
            #expect(key.isValidSignature(signature, for: message))
            var flipped = signature
            flipped[5] ^= 0x20
            #expect(!key.isValidSignature(flipped, for: message))
        }
    }

    /// Every one of Wycheproof's 151 verdicts (malleable S, truncated and malformed signatures).
    @Test func wycheproofEd25519Verdicts() throws {
        let file = try loadVectors("wycheproof-ed25519_test")
        let groups = try #require(file["testGroups"] as? [[String: Any]])
        var checked = 0
        for group in groups {
            let keyInfo = try #require(group["publicKey"] as? [String: Any])
            let publicKey = try Curve25519.Signing.PublicKey(rawRepresentation: hex(try #require(keyInfo["pk"] as? String)))
            for test in try #require(group["tests"] as? [[String: Any]]) {
                let message = hex(try #require(test["msg"] as? String))
                let signatureHex = try #require(test["sig"] as? String)
                let signature = signatureHex.count % 2 == 0 ? hex(signatureHex) : []
                let valid = try #require(test["result"] as? String) == "valid"
                let accepted = signature.count == 64 && publicKey.isValidSignature(signature, for: message)
                #expect(accepted == valid, "swift-crypto, tcId \(test["tcId"] ?? "")")
                // Sintra's own verifier gives the same verdicts.
                let memberKey = try MemberPublicKey(bytes: Array(publicKey.rawRepresentation))
                #expect(memberKey.isValidSignature(signature, for: message) == valid, "Sintra, tcId \(test["tcId"] ?? "")")
                checked += 1
            }
        }
        #expect(checked == 151)
    }

    /// C2SP CCTV edge cases. Sintra's policy: member keys with a low-order component or a non-canonical
    /// encoding are refused outright; for the keys that remain, a non-canonical R or a low-order residue
    /// (which only cofactored verification would accept) is rejected.
    @Test func cctvEdgeCasesFollowSintraPolicy() throws {
        let file = try loadVectors("cctv-ed25519-edge-cases")
        let vectors = try #require(file["vectors"] as? [[String: Any]])
        #expect(vectors.count == 914)
        var keysRefused = 0
        for vector in vectors {
            let flags = Set((vector["flags"] as? [String]) ?? [])
            let keyBytes = hex(try #require(vector["key"] as? String))
            let signature = hex(try #require(vector["sig"] as? String))
            let message = Array(try #require(vector["msg"] as? String).utf8)
            let badKey = !flags.isDisjoint(with: ["low_order_A", "low_order_component_A", "non_canonical_A"])
            guard let key = try? MemberPublicKey(bytes: keyBytes) else {
                #expect(badKey, "vector \(vector["number"] ?? "") key refused without a flag")
                keysRefused += 1
                continue
            }
            #expect(!badKey, "vector \(vector["number"] ?? "") key with \(flags) accepted")
            if !flags.isDisjoint(with: ["non_canonical_R", "low_order_residue"]) {
                #expect(!key.isValidSignature(signature, for: message))
            }
        }
        #expect(keysRefused > 0)
    }

    /// Sintra's Ed25519 and swift-crypto's (BoringSSL) agree on keys, signatures and verdicts.
    @Test func ed25519AgreesWithSwiftCrypto() throws {
        var random = TestRandom(seed: 31)
        for round in 0..<64 {
            let seed = randomBytes(32, using: &random)
            let message = randomBytes(Int(random.next() % 200), using: &random)
            let reference = try Curve25519.Signing.PrivateKey(rawRepresentation: seed)
            let identity = try NodeIdentity(index: 1, seed: seed)
            #expect(identity.publicKey.bytes == Array(reference.publicKey.rawRepresentation))
            let statement = SignedStatement(domain: "d", path: "p", payload: message)
            let signature = identity.sign(statement)
            #expect(signature == Array(try reference.signature(for: statement.signingBytes)))
            var corrupted = signature
            corrupted[Int(random.next() % 64)] ^= UInt8(1 << (random.next() % 8))
            for candidate in [signature, corrupted] {
                #expect(identity.publicKey.isValidSignature(candidate, for: statement.signingBytes)
                    == reference.publicKey.isValidSignature(candidate, for: statement.signingBytes), "round \(round)")
            }
            #expect(!identity.publicKey.isValidSignature(signature, for: statement.signingBytes + [0]))
        }
    }

    @Test func memberKeyRejectsMalformedBytes() throws {
        #expect(throws: DecodingError.self) { try MemberPublicKey(bytes: [1, 2, 3]) }
        #expect(throws: DecodingError.self) { try MemberPublicKey(bytes: [UInt8](repeating: 0, count: 32)) }
        // The identity (y = 1) has low order.
        #expect(throws: DecodingError.self) { try MemberPublicKey(bytes: [1] + [UInt8](repeating: 0, count: 31)) }
        // y = p (non-canonical encoding of y = 0).
        #expect(throws: DecodingError.self) {
            try MemberPublicKey(bytes: hex("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"))
        }
    }

    static func committee(_ n: Int, seed: UInt64) throws -> [NodeIdentity] {
        var random = TestRandom(seed: seed)
        return try (1...n).map { try NodeIdentity(index: $0, seed: randomBytes(32, using: &random)) }
    }

    @Test(arguments: [(4, 1), (7, 2), (10, 3)]) func quorumCertificateThresholds(n: Int, t: Int) throws {
        let identities = try Self.committee(n, seed: UInt64(n))
        let members = identities.map(\.publicKey)
        let statement = SignedStatement(domain: "c-ready", path: "vcbc/sender:2/seq:9", payload: [1, 2, 3])
        let quorum = n - t
        var builder = QuorumCertificate.Builder(statement: statement, members: members, threshold: quorum)
        for identity in identities.reversed() where !builder.isComplete {
            #expect(try builder.add(member: identity.index, signature: identity.sign(statement)))
        }
        let certificate = try #require(builder.certificate())
        #expect(certificate.signers.count == quorum)
        #expect(certificate.signers == certificate.signers.sorted())
        try certificate.verify(statement, members: members, threshold: quorum)
        let decoded = try QuorumCertificate(encoded: certificate.encoded, memberCount: n)
        #expect(decoded == certificate)
        try decoded.verify(statement, members: members, threshold: quorum)
        // Another statement (other path, other domain, other payload) does not verify.
        for other in [
            SignedStatement(domain: "c-ready", path: "vcbc/sender:2/seq:10", payload: [1, 2, 3]),
            SignedStatement(domain: "c-echo", path: "vcbc/sender:2/seq:9", payload: [1, 2, 3]),
            SignedStatement(domain: "c-ready", path: "vcbc/sender:2/seq:9", payload: [1, 2, 4]),
        ] {
            #expect(throws: QuorumCertificateError.self) { try certificate.verify(other, members: members, threshold: quorum) }
        }
        // One signer fewer is below the threshold.
        let short = QuorumCertificate(signatures: Array(certificate.signatures.dropLast()))
        #expect(throws: QuorumCertificateError.belowThreshold(signers: quorum - 1, required: quorum)) {
            try short.verify(statement, members: members, threshold: quorum)
        }
    }

    /// The duplicate-signer pitfall (PROTOCOLS.md §4): a member's signature presented twice, even with
    /// different bytes, never counts twice.
    @Test func duplicateSignersNeverCountTwice() throws {
        let identities = try Self.committee(4, seed: 40)
        let members = identities.map(\.publicKey)
        let statement = SignedStatement(domain: "pre-vote", path: "abba/round:1", payload: [0])
        let first = identities[0].sign(statement)
        let second = identities[1].sign(statement)
        // A second, different, valid-looking signature by member 1 (garbage bytes here).
        var other = first
        other[63] ^= 1
        let doubled = QuorumCertificate(signatures: [
            .init(member: 1, bytes: first), .init(member: 1, bytes: other), .init(member: 2, bytes: second),
        ])
        #expect(throws: QuorumCertificateError.duplicateSigner(1)) {
            try doubled.verify(statement, members: members, threshold: 3)
        }
        // The decoder refuses repeated or unordered indices.
        var writer = ByteWriter()
        writer.write(UInt16(2))
        writer.write(UInt16(1))
        writer.writeFixed(first)
        writer.write(UInt16(1))
        writer.writeFixed(first)
        #expect(throws: DecodingError.self) { try QuorumCertificate(encoded: writer.bytes, memberCount: 4) }
        // The builder ignores a repeat.
        var builder = QuorumCertificate.Builder(statement: statement, members: members, threshold: 2)
        #expect(try builder.add(member: 1, signature: first))
        #expect(try !builder.add(member: 1, signature: first))
        #expect(builder.signerCount == 1)
        #expect(throws: QuorumCertificateError.invalidSignature(member: 2)) {
            try builder.add(member: 2, signature: first)
        }
        #expect(throws: QuorumCertificateError.memberOutOfRange(5)) { try builder.add(member: 5, signature: first) }
        #expect(throws: QuorumCertificateError.memberOutOfRange(0)) { try builder.add(member: 0, signature: first) }
    }

    @Test func certificateDecodingNeverTraps() {
        var random = TestRandom(seed: 77)
        for _ in 0..<500 {
            let bytes = randomBytes(Int(random.next() % 400), using: &random)
            _ = try? QuorumCertificate(encoded: bytes, memberCount: 4)
        }
        #expect(throws: DecodingError.self) { try QuorumCertificate(encoded: [0x00, 0x05], memberCount: 4) }
    }
}
