@_spi(Benchmarks) import SintraCrypto

/// Pippenger against Straus inside Sintra (no libsodium side): the same inputs through
/// `multiscalarVariableTime(_:_:algorithm:)` and `SignatureBatch.verify(algorithm:)`, timed as interleaved
/// pairs like the libsodium rows. In a `Comparison` here, `sintra` is the new method (Pippenger, or the
/// automatic choice) and `libsodium` the old one (Straus), so the ratio is new / old.
struct MethodRow {
    var comparison: Comparison
    /// The per-operation times are divided by this before printing (signatures per batch).
    var divisor: Double
}

func methodComparisons() -> [MethodRow] {
    var rows = [MethodRow]()
    // Generic multi-scalar multiplications: full-size random scalars, random points.
    let largest = 4096
    let points = (0..<largest).map { _ in GroupElement.generatorMultiple(Scalar.random()) }
    let scalars = (0..<largest).map { _ in Scalar.random() }
    for count in [64, 96, 128, 160, 192, 256, 512, 1024, 4096] {
        let scalarSet = Array(scalars.prefix(count))
        let pointSet = Array(points.prefix(count))
        rows.append(
            MethodRow(
                comparison: Comparison(
                    name: "multi-scalar, \(count) terms: Pippenger vs Straus (per multiplication)",
                    sintra: { iterations in
                        for _ in 0..<iterations {
                            let sum = GroupElement.multiscalarVariableTime(scalarSet, pointSet, algorithm: .pippenger)
                            consume(firstByte(of: sum))
                        }
                    },
                    libsodium: { iterations in
                        for _ in 0..<iterations {
                            let sum = GroupElement.multiscalarVariableTime(scalarSet, pointSet, algorithm: .straus)
                            consume(firstByte(of: sum))
                        }
                    }),
                divisor: 1))
    }

    // SignatureBatch of N client-like requests (distinct keys, 100-byte messages), per signature.
    let signatureCount = 2048
    let signers = (0..<signatureCount).map { index in
        try! NodeIdentity(index: index + 1, seed: (0..<32).map { _ in UInt8.random(in: 0...255) })
    }
    let keys = signers.map(\.publicKey)
    let messages = (0..<signatureCount).map { _ in (0..<100).map { _ in UInt8.random(in: 0...255) } }
    let signatures = (0..<signatureCount).map { index in
        signers[index].sign(SignedStatement(domain: "benchmark", path: "request", payload: messages[index]))
    }
    let signedMessages = (0..<signatureCount).map { index in
        SignedStatement(domain: "benchmark", path: "request", payload: messages[index]).signingBytes
    }
    for size in [16, 48, 64, 96, 128, 512, 2048] {
        var prepared = SignatureBatch()
        for index in 0..<size { prepared.add(signatures[index], message: signedMessages[index], key: keys[index]) }
        precondition(prepared.verify(algorithm: .straus) && prepared.verify(algorithm: .automatic))
        func addAndVerify(_ algorithm: MultiscalarAlgorithm) -> (Int) -> Void {
            { iterations in
                for _ in 0..<iterations {
                    var batch = SignatureBatch()
                    for index in 0..<size {
                        batch.add(signatures[index], message: signedMessages[index], key: keys[index])
                    }
                    consume(batch.verify(algorithm: algorithm) ? 1 : 0)
                }
            }
        }
        func verifyOnly(_ algorithm: MultiscalarAlgorithm) -> (Int) -> Void {
            { iterations in
                for _ in 0..<iterations { consume(prepared.verify(algorithm: algorithm) ? 1 : 0) }
            }
        }
        rows.append(
            MethodRow(
                comparison: Comparison(
                    name: "SignatureBatch of \(size), add + verify: automatic vs Straus (per signature)",
                    sintra: addAndVerify(.automatic), libsodium: addAndVerify(.straus)),
                divisor: Double(size)))
        rows.append(
            MethodRow(
                comparison: Comparison(
                    name: "SignatureBatch of \(size), verify only: automatic vs Straus (per signature)",
                    sintra: verifyOnly(.automatic), libsodium: verifyOnly(.straus)),
                divisor: Double(size)))
    }
    return rows
}
