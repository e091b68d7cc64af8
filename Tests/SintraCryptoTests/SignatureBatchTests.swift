import Foundation
import Testing

@testable import SintraCrypto

/// Cofactored single and batch Ed25519 verification: same verdicts as RFC 8032 on honest signatures, the
/// cofactored verdicts on C2SP CCTV's edge cases, and a batch verdict that is the conjunction of the single
/// verdicts whatever else is in the batch.
struct SignatureBatchTests {
    static func identities(_ count: Int, seed: UInt64) throws -> [NodeIdentity] {
        var random = TestRandom(seed: seed)
        return try (1...count).map { index in
            try NodeIdentity(index: index, seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &random) })
        }
    }

    static func message(_ index: Int) -> [UInt8] { Array("request \(index)".utf8) }

    @Test(arguments: [1, 2, 7, 64])
    func validBatchesVerify(size: Int) throws {
        let signers = try Self.identities(size, seed: UInt64(size))
        var batch = SignatureBatch()
        for (index, signer) in signers.enumerated() {
            let statementBytes = Self.message(index)
            let signature = Ed25519.sign(statementBytes, with: Ed25519.ExpandedSecret(seed: signer.seed))
            batch.add(signature, message: statementBytes, key: signer.publicKey)
        }
        #expect(batch.count == size)
        #expect(batch.verify())
        #expect(batch.invalidIndices().isEmpty)
        #expect(SignatureBatch().verify())
    }

    /// One bad signature anywhere makes the batch fail, and attribution names exactly the bad ones.
    @Test func invalidSignaturesAreFoundAndNamed() throws {
        let signers = try Self.identities(16, seed: 99)
        let signatures = signers.enumerated().map { index, signer in
            Ed25519.sign(Self.message(index), with: Ed25519.ExpandedSecret(seed: signer.seed))
        }
        let corruptions: [(Int, (inout [UInt8], inout [UInt8]) -> Void)] = [
            (0, { signature, _ in signature[40] ^= 1 }),  // S changed
            (5, { _, message in message.append(0) }),  // another message
            (9, { signature, _ in signature[3] ^= 0x10 }),  // R changed
            (15, { signature, _ in signature = Array(signature.prefix(63)) }),  // truncated
            (7, { signature, _ in  // S + ℓ: the same point equation, but S is not canonical
                var carry = 0
                let order: [UInt8] = Array(hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010"))
                for offset in 0..<32 {
                    let sum = Int(signature[32 + offset]) + Int(order[offset]) + carry
                    signature[32 + offset] = UInt8(sum & 0xff)
                    carry = sum >> 8
                }
            }),
        ]
        for (bad, corrupt) in corruptions {
            var batch = SignatureBatch()
            for index in signers.indices {
                var signature = signatures[index]
                var message = Self.message(index)
                if index == bad { corrupt(&signature, &message) }
                batch.add(signature, message: message, key: signers[index].publicKey)
                #expect(
                    SignatureBatch.isValid(signature, message: message, key: signers[index].publicKey) == (index != bad))
            }
            #expect(!batch.verify(), "corruption at \(bad) passed the batch")
            #expect(batch.invalidIndices() == [bad])
        }
        // Two signatures swapped between keys: both wrong.
        var batch = SignatureBatch()
        for index in signers.indices {
            let source = index == 2 ? 3 : index == 3 ? 2 : index
            batch.add(signatures[source], message: Self.message(source), key: signers[index].publicKey)
        }
        #expect(batch.invalidIndices() == [2, 3])
    }

    /// The search by halves names exactly the invalid signatures, for any number and placement of them
    /// (none, one at either end, clustered, spread, all), including unparseable ones, in batches of odd
    /// and even size: its verdicts are the single verdicts.
    @Test(arguments: [1, 2, 3, 50, 97])
    func searchByHalvesNamesExactlyTheInvalidOnes(size: Int) throws {
        let signers = try Self.identities(size, seed: 1000 + UInt64(size))
        let signatures = signers.enumerated().map { index, signer in
            Ed25519.sign(Self.message(index), with: Ed25519.ExpandedSecret(seed: signer.seed))
        }
        var random = TestRandom(seed: UInt64(size))
        var patterns: [Set<Int>] = [[], [0], [size - 1], Set(0..<size), Set(0..<min(size, 4))]
        for _ in 0..<6 {
            patterns.append(Set((0..<size).filter { _ in Int.random(in: 0..<8, using: &random) == 0 }))
        }
        for bad in patterns {
            var batch = SignatureBatch()
            var singles = [Int]()
            for index in signers.indices {
                var signature = signatures[index]
                if bad.contains(index) {
                    // Alternately a changed S, a changed R, and a signature too short to parse.
                    switch index % 3 {
                    case 0: signature[40] ^= 1
                    case 1: signature[3] ^= 0x10
                    default: signature.removeLast()
                    }
                }
                batch.add(signature, message: Self.message(index), key: signers[index].publicKey)
                if !SignatureBatch.isValid(signature, message: Self.message(index), key: signers[index].publicKey) {
                    singles.append(index)
                }
            }
            #expect(singles == bad.sorted(), "every corruption is invalid on its own")
            #expect(batch.invalidIndices() == singles, "size \(size), bad \(bad.sorted())")
            #expect(batch.verify() == bad.isEmpty)
        }
    }

    /// On every CCTV vector whose key a member may have (prime order, canonical), the cofactored rule
    /// accepts exactly the signatures with a canonical R, low-order residues included, and a batch of
    /// such a signature with honest ones gets the same verdict as the signature alone.
    @Test func cctvVerdictsAreCofactoredAndBatchIndependent() throws {
        let file = try loadVectors("cctv-ed25519-edge-cases")
        let vectors = try #require(file["vectors"] as? [[String: Any]])
        let honest = try Self.identities(5, seed: 7)
        var checked = 0
        var residues = 0
        for vector in vectors {
            let flags = Set((vector["flags"] as? [String]) ?? [])
            guard let key = try? MemberPublicKey(bytes: hex(try #require(vector["key"] as? String))) else { continue }
            let signature = hex(try #require(vector["sig"] as? String))
            let message = Array(try #require(vector["msg"] as? String).utf8)
            let expected = !flags.contains("non_canonical_R")
            #expect(key.isValidSignatureCofactored(signature, for: message) == expected, "vector \(vector["number"] ?? "")")
            if expected && flags.contains("low_order_residue") {
                residues += 1
                #expect(!key.isValidSignature(signature, for: message), "cofactorless must reject a residue")
            }
            for position in [0, 2, 5] {
                var batch = SignatureBatch()
                for (index, signer) in honest.enumerated() {
                    if index == position { batch.add(signature, message: message, key: key) }
                    let signed = Ed25519.sign(Self.message(index), with: Ed25519.ExpandedSecret(seed: signer.seed))
                    batch.add(signed, message: Self.message(index), key: signer.publicKey)
                }
                if position == 5 { batch.add(signature, message: message, key: key) }
                #expect(batch.verify() == expected, "vector \(vector["number"] ?? "") at \(position)")
            }
            checked += 1
        }
        #expect(checked > 0)
        #expect(residues > 0)
    }

    /// Every honest Wycheproof verdict is unchanged by the cofactored rule (its cases are malleability,
    /// truncation and encoding, not low-order residues).
    @Test func wycheproofVerdictsAgreeWithStrictVerification() throws {
        let file = try loadVectors("wycheproof-ed25519_test")
        let groups = try #require(file["testGroups"] as? [[String: Any]])
        var checked = 0
        for group in groups {
            let keyInfo = try #require(group["publicKey"] as? [String: Any])
            let key = try MemberPublicKey(bytes: hex(try #require(keyInfo["pk"] as? String)))
            for test in try #require(group["tests"] as? [[String: Any]]) {
                let message = hex(try #require(test["msg"] as? String))
                let signatureHex = try #require(test["sig"] as? String)
                let signature = signatureHex.count % 2 == 0 ? hex(signatureHex) : []
                let valid = try #require(test["result"] as? String) == "valid"
                #expect(key.isValidSignatureCofactored(signature, for: message) == valid, "tcId \(test["tcId"] ?? "")")
                checked += 1
            }
        }
        #expect(checked == 151)
    }

    /// A quorum certificate with one forged signature among valid ones is refused and the forger named.
    @Test func quorumCertificateNamesTheForger() throws {
        let members = try Self.identities(7, seed: 3)
        let keys = members.map(\.publicKey)
        let statement = SignedStatement(domain: "test", path: "p", payload: [1, 2, 3])
        var signatures = members.prefix(5).map { QuorumCertificate.Signature(member: $0.index, bytes: $0.sign(statement)) }
        try QuorumCertificate(signatures: signatures).verify(statement, members: keys, threshold: 5)
        signatures[3] = QuorumCertificate.Signature(member: 4, bytes: members[5].sign(statement))
        #expect(throws: QuorumCertificateError.invalidSignature(member: 4)) {
            try QuorumCertificate(signatures: signatures).verify(statement, members: keys, threshold: 5)
        }
    }
}
