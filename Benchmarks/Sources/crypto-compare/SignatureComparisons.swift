import LibsodiumReference
import SintraCrypto

/// Ed25519 verification: one signature (strict and cofactored), batches, and quorum certificates, each
/// against libsodium's `crypto_sign_verify_detached` on the same signatures one by one.
func signatureComparisons(_ fixture: Fixture) -> [Comparison] {
    let sodium = fixture.sodium
    let signers = (1...64).map { index in
        try! NodeIdentity(index: index, seed: (0..<32).map { _ in UInt8.random(in: 0...255) })
    }
    let keys = signers.map(\.publicKey)
    let statements = (0..<64).map { index in
        SignedStatement(domain: "benchmark", path: "abc/round:\(index)", payload: fixture.messages[index])
    }
    let messages = statements.map(\.signingBytes)
    let signatures = (0..<64).map { signers[$0].sign(statements[$0]) }

    /// libsodium verifying one signature.
    func sodiumVerifyOne(_ signature: [UInt8], _ message: [UInt8], _ key: MemberPublicKey) {
        let result = signature.withUnsafeBufferPointer { signature in
            message.withUnsafeBufferPointer { message in
                key.bytes.withUnsafeBufferPointer { key in
                    sodium.signVerifyDetached(
                        signature.baseAddress!, message.baseAddress!, UInt64(message.count), key.baseAddress!)
                }
            }
        }
        consume(UInt8(truncatingIfNeeded: result))
    }
    /// libsodium verifying the fixture's signatures first..<first + count one by one.
    func sodiumVerify(_ first: Int, _ count: Int) {
        for index in first..<(first + count) { sodiumVerifyOne(signatures[index], messages[index], keys[index]) }
    }

    typealias Verifier = (MemberPublicKey, [UInt8], [UInt8]) -> Bool
    let singles: [(String, Verifier)] = [
        ("strict, cofactorless", { key, signature, message in key.isValidSignature(signature, for: message) }),
        ("cofactored", { key, signature, message in key.isValidSignatureCofactored(signature, for: message) }),
    ]
    var rows = singles.map { rule, verifier in
        Comparison(
            name: "Ed25519: verify (\(rule))",
            sintra: { iterations in
                for index in 0..<iterations {
                    let slot = index & 63
                    consume(verifier(keys[slot], signatures[slot], messages[slot]) ? 1 : 0)
                }
            },
            libsodium: { iterations in
                for index in 0..<iterations { sodiumVerify(index & 63, 1) }
            })
    }
    for size in [4, 16, 64] {
        rows.append(
            Comparison(
                name: "Ed25519: batch of \(size) (per batch)",
                sintra: { iterations in
                    for _ in 0..<iterations {
                        var batch = SignatureBatch()
                        for index in 0..<size { batch.add(signatures[index], message: messages[index], key: keys[index]) }
                        consume(batch.verify() ? 1 : 0)
                    }
                },
                libsodium: { iterations in
                    for _ in 0..<iterations { sodiumVerify(0, size) }
                }))
    }
    for (replicas, signersNeeded) in [(4, 3), (31, 21)] {
        let statement = SignedStatement(domain: "benchmark", path: "abc/qc", payload: fixture.messages[0])
        let certificate = QuorumCertificate(
            signatures: (0..<signersNeeded).map {
                QuorumCertificate.Signature(member: $0 + 1, bytes: signers[$0].sign(statement))
            })
        let members = Array(keys.prefix(replicas))
        let message = statement.signingBytes
        let certificateSignatures = certificate.signatures.map(\.bytes)
        rows.append(
            Comparison(
                name: "QC: verify \(signersNeeded) of \(replicas) signatures",
                sintra: { iterations in
                    for _ in 0..<iterations {
                        consume((try? certificate.verify(statement, members: members, threshold: signersNeeded)) != nil ? 1 : 0)
                    }
                },
                libsodium: { iterations in
                    for _ in 0..<iterations {
                        for index in 0..<signersNeeded {
                            sodiumVerifyOne(certificateSignatures[index], message, members[index])
                        }
                    }
                }))
    }
    return rows
}
