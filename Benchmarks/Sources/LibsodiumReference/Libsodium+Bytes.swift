/// Array-based wrappers around the C functions, for the differential check and for setting up inputs.
///
/// The timing loops call the function pointers directly on preallocated buffers instead, so that the measured
/// libsodium time contains no Swift array allocation.
extension Libsodium {
    /// The result of a C function that writes 32 bytes and returns a status (0 on success).
    public struct Output: Equatable, Sendable {
        /// The C return value.
        public var status: Int32
        /// The 32 bytes written.
        public var bytes: [UInt8]
    }

    /// Calls a function that writes 32 bytes from two inputs.
    public func call(_ function: BinaryFunction, _ first: [UInt8], _ second: [UInt8]) -> Output {
        var output = [UInt8](repeating: 0, count: 32)
        let status = output.withUnsafeMutableBufferPointer { result in
            first.withUnsafeBufferPointer { a in
                second.withUnsafeBufferPointer { b in
                    function(result.baseAddress!, a.baseAddress!, b.baseAddress!)
                }
            }
        }
        return Output(status: status, bytes: output)
    }

    /// Calls a function that writes 32 bytes from one input.
    public func call(_ function: UnaryFunction, _ input: [UInt8]) -> Output {
        var output = [UInt8](repeating: 0, count: 32)
        let status = output.withUnsafeMutableBufferPointer { result in
            input.withUnsafeBufferPointer { a in function(result.baseAddress!, a.baseAddress!) }
        }
        return Output(status: status, bytes: output)
    }

    /// Calls a scalar function of two 32-byte scalars.
    public func call(_ function: ScalarBinaryFunction, _ first: [UInt8], _ second: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        output.withUnsafeMutableBufferPointer { result in
            first.withUnsafeBufferPointer { a in
                second.withUnsafeBufferPointer { b in function(result.baseAddress!, a.baseAddress!, b.baseAddress!) }
            }
        }
        return output
    }

    /// Calls a scalar function of one input (32 bytes, or 64 for `scalarReduce`).
    public func call(_ function: ScalarUnaryFunction, _ input: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        output.withUnsafeMutableBufferPointer { result in
            input.withUnsafeBufferPointer { a in function(result.baseAddress!, a.baseAddress!) }
        }
        return output
    }

    /// Whether `encoding` is a canonical encoding of a ristretto255 element.
    public func isValid(_ encoding: [UInt8]) -> Bool {
        precondition(encoding.count == 32)
        return encoding.withUnsafeBufferPointer { isValidPoint($0.baseAddress!) } == 1
    }

    /// A uniformly random scalar from libsodium's generator.
    public func randomScalar() -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        output.withUnsafeMutableBufferPointer { scalarRandom($0.baseAddress!) }
        return output
    }

    /// SHA-512 of `message`.
    public func sha512(_ message: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 64)
        _ = output.withUnsafeMutableBufferPointer { result in
            message.withUnsafeBufferPointer { input in
                // An empty array may have no storage; libsodium reads nothing when the length is 0.
                let source = input.baseAddress ?? UnsafePointer(result.baseAddress!)
                return sha512(result.baseAddress!, source, UInt64(input.count))
            }
        }
        return output
    }

    /// hash_to_ristretto255 (RFC 9380 expand_message_xmd with SHA-512, 64 bytes, then RFC 9496 element
    /// derivation) built from libsodium's SHA-512 and `crypto_core_ristretto255_from_hash`.
    ///
    /// libsodium 1.0.18 has no hash-to-group function of its own (`crypto_core_ristretto255_from_string`
    /// arrived in 1.0.19); this is what a libsodium user writes to get the same result as `HashToGroup.element`.
    public func hashToGroup(_ message: [UInt8], domain: [UInt8]) -> [UInt8] {
        precondition(domain.count <= 255, "long domain tags are not needed by the benchmarks")
        let domainPrime = domain + [UInt8(domain.count)]
        // expand_message_xmd with len_in_bytes = 64 is a single block: b0 = H(Z_pad ‖ msg ‖ I2OSP(64, 2) ‖ 0 ‖
        // DST′), b1 = H(b0 ‖ 1 ‖ DST′), output = b1.
        let b0 = sha512([UInt8](repeating: 0, count: 128) + message + [0, 64, 0] + domainPrime)
        let uniform = sha512(b0 + [1] + domainPrime)
        return call(fromHash, uniform).bytes
    }
}
