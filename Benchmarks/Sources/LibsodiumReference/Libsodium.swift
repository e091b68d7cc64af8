#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The ristretto255, SHA-512 and Ed25519 verification functions of the system's libsodium, loaded at run time.
///
/// No libsodium headers are installed on the build machines, so the library is opened with `dlopen` and each
/// symbol is cast to its C signature. Only the reference benchmarks and the differential check use this; the
/// main package never links libsodium. Every method takes and returns the same byte strings as the C API
/// (32-byte elements and scalars, 64-byte hashes), so the results can be compared byte for byte with Sintra's.
public final class Libsodium: Sendable {
    /// The signature shared by `crypto_scalarmult_ristretto255` and `crypto_core_ristretto255_add`:
    /// (output, first input, second input) → status.
    public typealias BinaryFunction = @convention(c) (
        UnsafeMutablePointer<UInt8>, UnsafePointer<UInt8>, UnsafePointer<UInt8>
    ) -> Int32
    /// (output, input) → status, as in `crypto_scalarmult_ristretto255_base` and `..._from_hash`.
    public typealias UnaryFunction = @convention(c) (UnsafeMutablePointer<UInt8>, UnsafePointer<UInt8>) -> Int32
    /// (output, first input, second input) with no status, as in `crypto_core_ristretto255_scalar_add`.
    public typealias ScalarBinaryFunction = @convention(c) (
        UnsafeMutablePointer<UInt8>, UnsafePointer<UInt8>, UnsafePointer<UInt8>
    ) -> Void
    /// (output, input) with no status, as in `crypto_core_ristretto255_scalar_reduce`.
    public typealias ScalarUnaryFunction = @convention(c) (UnsafeMutablePointer<UInt8>, UnsafePointer<UInt8>) -> Void

    /// The paths tried in order when `SINTRA_LIBSODIUM_PATH` is not set.
    public static let defaultPaths = [
        "libsodium.so.23",
        "/usr/lib/x86_64-linux-gnu/libsodium.so.23",
        "/usr/lib/aarch64-linux-gnu/libsodium.so.23",
        "libsodium.so",
        "/opt/homebrew/lib/libsodium.dylib",
        "/usr/local/lib/libsodium.dylib",
    ]

    /// The libsodium version string, for reports.
    public let version: String
    /// The path that was opened.
    public let path: String

    /// crypto_scalarmult_ristretto255(q, n, p): q = n·p; −1 for an invalid p or an identity result.
    public let scalarMultiply: BinaryFunction
    /// crypto_scalarmult_ristretto255_base(q, n): q = n·B; −1 for an identity result.
    public let scalarMultiplyBase: UnaryFunction
    /// crypto_core_ristretto255_is_valid_point(p): 1 when p is a canonical encoding of an element.
    public let isValidPoint: @convention(c) (UnsafePointer<UInt8>) -> Int32
    /// crypto_core_ristretto255_add(r, p, q): r = p + q; −1 when an input is invalid.
    public let add: BinaryFunction
    /// crypto_core_ristretto255_from_hash(p, r): RFC 9496 element derivation from 64 bytes.
    public let fromHash: UnaryFunction
    /// crypto_core_ristretto255_scalar_random(r): a uniformly random scalar.
    public let scalarRandom: @convention(c) (UnsafeMutablePointer<UInt8>) -> Void
    /// crypto_core_ristretto255_scalar_reduce(r, s): reduces 64 bytes modulo ℓ.
    public let scalarReduce: ScalarUnaryFunction
    /// crypto_core_ristretto255_scalar_add(z, x, y).
    public let scalarAdd: ScalarBinaryFunction
    /// crypto_core_ristretto255_scalar_sub(z, x, y).
    public let scalarSubtract: ScalarBinaryFunction
    /// crypto_core_ristretto255_scalar_mul(z, x, y).
    public let scalarMultiplyScalars: ScalarBinaryFunction
    /// crypto_core_ristretto255_scalar_negate(r, s).
    public let scalarNegate: ScalarUnaryFunction
    /// crypto_core_ristretto255_scalar_invert(r, s): −1 for s = 0.
    public let scalarInvert: UnaryFunction
    /// crypto_sign_verify_detached(signature, message, length, public key): 0 for a valid Ed25519 signature.
    public let signVerifyDetached: @convention(c) (UnsafePointer<UInt8>, UnsafePointer<UInt8>, UInt64, UnsafePointer<UInt8>) -> Int32
    /// crypto_hash_sha512(out, in, length).
    public let sha512: @convention(c) (UnsafeMutablePointer<UInt8>, UnsafePointer<UInt8>, UInt64) -> Int32

    /// Why libsodium could not be loaded.
    public struct LoadingError: Error, CustomStringConvertible {
        /// What went wrong, with the dynamic loader's message.
        public let description: String
    }

    /// Opens libsodium from `SINTRA_LIBSODIUM_PATH` or the first of `defaultPaths` that loads, resolves every
    /// symbol and calls `sodium_init`.
    public init() throws(LoadingError) {
        var candidates = Libsodium.defaultPaths
        if let override = getenv("SINTRA_LIBSODIUM_PATH") {
            candidates = [String(cString: override)]
        }
        var opened: (handle: UnsafeMutableRawPointer, path: String)?
        for candidate in candidates {
            if let handle = dlopen(candidate, RTLD_NOW | RTLD_LOCAL) {
                opened = (handle, candidate)
                break
            }
        }
        guard let opened else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown reason"
            throw LoadingError(description: "cannot open libsodium (tried \(candidates)): \(reason)")
        }
        let handle = opened.handle
        path = opened.path

        // Each symbol is looked up by its exact C name and reinterpreted as the signature documented in
        // libsodium's headers; a missing symbol is an error rather than a crash at the first call.
        func symbol<Function>(_ name: String, as type: Function.Type) throws(LoadingError) -> Function {
            guard let address = dlsym(handle, name) else {
                throw LoadingError(description: "libsodium at \(opened.path) has no symbol \(name)")
            }
            return unsafeBitCast(address, to: type)
        }
        let initialize = try symbol("sodium_init", as: (@convention(c) () -> Int32).self)
        guard initialize() >= 0 else {
            throw LoadingError(description: "sodium_init failed")
        }
        let versionString = try symbol(
            "sodium_version_string", as: (@convention(c) () -> UnsafePointer<CChar>).self)
        version = String(cString: versionString())
        scalarMultiply = try symbol("crypto_scalarmult_ristretto255", as: BinaryFunction.self)
        scalarMultiplyBase = try symbol("crypto_scalarmult_ristretto255_base", as: UnaryFunction.self)
        isValidPoint = try symbol(
            "crypto_core_ristretto255_is_valid_point", as: (@convention(c) (UnsafePointer<UInt8>) -> Int32).self)
        add = try symbol("crypto_core_ristretto255_add", as: BinaryFunction.self)
        fromHash = try symbol("crypto_core_ristretto255_from_hash", as: UnaryFunction.self)
        scalarRandom = try symbol(
            "crypto_core_ristretto255_scalar_random",
            as: (@convention(c) (UnsafeMutablePointer<UInt8>) -> Void).self)
        scalarReduce = try symbol("crypto_core_ristretto255_scalar_reduce", as: ScalarUnaryFunction.self)
        scalarAdd = try symbol("crypto_core_ristretto255_scalar_add", as: ScalarBinaryFunction.self)
        scalarSubtract = try symbol("crypto_core_ristretto255_scalar_sub", as: ScalarBinaryFunction.self)
        scalarMultiplyScalars = try symbol("crypto_core_ristretto255_scalar_mul", as: ScalarBinaryFunction.self)
        scalarNegate = try symbol("crypto_core_ristretto255_scalar_negate", as: ScalarUnaryFunction.self)
        scalarInvert = try symbol("crypto_core_ristretto255_scalar_invert", as: UnaryFunction.self)
        signVerifyDetached = try symbol(
            "crypto_sign_verify_detached",
            as: (@convention(c) (UnsafePointer<UInt8>, UnsafePointer<UInt8>, UInt64, UnsafePointer<UInt8>) -> Int32).self)
        sha512 = try symbol(
            "crypto_hash_sha512",
            as: (@convention(c) (UnsafeMutablePointer<UInt8>, UnsafePointer<UInt8>, UInt64) -> Int32).self)
        // The handle is deliberately never closed: the function pointers above stay valid for the process.
    }
}
