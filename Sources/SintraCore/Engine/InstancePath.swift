import SintraCrypto

/// The full name of a protocol instance, e.g. `abc/epoch:3/round:17/mvba/abba:2`.
///
/// Bound into every signed statement, coin name and label, so nothing made in one instance counts in
/// another. Canonically encoded: a component count, then per component a length-prefixed name and an
/// optional 64-bit index.
public struct InstancePath: Sendable, Hashable, Comparable, CustomStringConvertible {
    public static let componentCountMax = 16
    public static let nameBytesMax = 32

    public struct Component: Sendable, Hashable, Comparable {
        public let name: String
        public let index: UInt64?

        public static func < (a: Component, b: Component) -> Bool {
            if a.name != b.name { return a.name < b.name }
            return (a.index ?? 0, a.index == nil ? 0 : 1) < (b.index ?? 0, b.index == nil ? 0 : 1)
        }
    }

    public let components: [Component]

    public init(_ name: String, _ index: UInt64? = nil) {
        self.init(components: [])
        self = child(name, index)
    }

    private init(components: [Component]) {
        self.components = components
    }

    public static let root = InstancePath(components: [])

    /// This path extended by one component.
    public func child(_ name: String, _ index: UInt64? = nil) -> InstancePath {
        precondition(components.count < InstancePath.componentCountMax, "instance path too deep")
        precondition(!name.isEmpty && name.utf8.count <= InstancePath.nameBytesMax, "bad path component name")
        precondition(!name.contains("/") && !name.contains(":"), "path names exclude / and :")
        return InstancePath(components: components + [Component(name: name, index: index)])
    }

    public func child(_ name: String, _ index: Int) -> InstancePath { child(name, UInt64(index)) }

    public var description: String {
        components.map { component in
            component.index.map { "\(component.name):\($0)" } ?? component.name
        }.joined(separator: "/")
    }

    public func encode(into writer: inout ByteWriter) {
        writer.write(UInt8(components.count))
        for component in components {
            writer.write(UInt8(component.name.utf8.count))
            writer.writeFixed(Array(component.name.utf8))
            if let index = component.index {
                writer.write(UInt8(1))
                writer.write(index)
            } else {
                writer.write(UInt8(0))
            }
        }
    }

    public var encoded: [UInt8] {
        var writer = ByteWriter()
        encode(into: &writer)
        return writer.bytes
    }

    public init(from reader: inout ByteReader) throws(DecodingError) {
        let count = Int(try reader.readUInt8())
        guard count <= InstancePath.componentCountMax else {
            throw DecodingError(.tooLong(maximum: InstancePath.componentCountMax, actual: count), in: "instance path")
        }
        var components = [Component]()
        for _ in 0..<count {
            let length = Int(try reader.readUInt8())
            guard length >= 1, length <= InstancePath.nameBytesMax else {
                throw DecodingError(.invalidValue("component name length \(length)"), in: "instance path")
            }
            guard let name = String(validating: try reader.readFixed(length), as: UTF8.self),
                !name.contains("/"), !name.contains(":")
            else {
                throw DecodingError(.invalidValue("component name is not valid"), in: "instance path")
            }
            let flag = try reader.readUInt8()
            switch flag {
            case 0: components.append(Component(name: name, index: nil))
            case 1: components.append(Component(name: name, index: try reader.readUInt64()))
            default: throw DecodingError(.invalidValue("index flag \(flag)"), in: "instance path")
            }
        }
        self.init(components: components)
    }

    public static func < (a: InstancePath, b: InstancePath) -> Bool {
        a.components.lexicographicallyPrecedes(b.components)
    }
}
