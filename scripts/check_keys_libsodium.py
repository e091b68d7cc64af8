#!/usr/bin/env python3
"""Check a folder written by `sintra keygen` with libsodium's ristretto255 and Ed25519.

An independent implementation reads Sintra's key files: every element must be a valid ristretto255
encoding; each verification key must equal sum_j i^j * C_j over the Feldman commitments; any t+1
verification keys must interpolate to the group key; each replica's share s_i must satisfy s_i*G = vk_i;
each Ed25519 seed must give the member's public key. Uses the system's libsodium.so.23 through ctypes.

Usage: scripts/check_keys_libsodium.py KEY_FOLDER
Exit status 0 when everything checks, 1 otherwise.
"""
import ctypes
import ctypes.util
import glob
import json
import os
import sys

L = 2**252 + 27742317777372353535851937790883648493


def load_sodium():
    for name in ("libsodium.so.23", ctypes.util.find_library("sodium")):
        if name:
            try:
                library = ctypes.CDLL(name)
                break
            except OSError:
                continue
    else:
        sys.exit("libsodium not found (Debian: libsodium23)")
    if library.sodium_init() < 0:
        sys.exit("sodium_init failed")
    return library


sodium = load_sodium()


def element(hex_text):
    data = bytes.fromhex(hex_text)
    if len(data) != 32 or sodium.crypto_core_ristretto255_is_valid_point(data) != 1:
        raise ValueError(f"invalid ristretto255 element {hex_text}")
    return data


def scalar_bytes(value):
    return (value % L).to_bytes(32, "little")


def multiply(scalar, point):
    out = ctypes.create_string_buffer(32)
    if sodium.crypto_scalarmult_ristretto255(out, scalar_bytes(scalar), point) != 0:
        return bytes(32)  # libsodium refuses an identity result; represent it as the identity encoding
    return out.raw


def add(p, q):
    if p == bytes(32):
        return q
    if q == bytes(32):
        return p
    out = ctypes.create_string_buffer(32)
    sodium.crypto_core_ristretto255_add(out, p, q)
    return out.raw


def base_multiply(scalar_le):
    out = ctypes.create_string_buffer(32)
    if sodium.crypto_scalarmult_ristretto255_base(out, scalar_le) != 0:
        return bytes(32)
    return out.raw


def lagrange_at_zero(index, indices):
    numerator, denominator = 1, 1
    for other in indices:
        if other != index:
            numerator = numerator * (-other) % L
            denominator = denominator * (index - other) % L
    return numerator * pow(denominator, -1, L) % L


def check_threshold_key(name, key, replicas, faulty, failures):
    commitments = [element(c) for c in key["commitments"]]
    verification = [element(v) for v in key["verificationKeys"]]
    group_key = element(key["groupKey"])
    if key["threshold"] != faulty + 1 or len(commitments) != faulty + 1 or len(verification) != replicas:
        failures.append(f"{name}: wrong threshold or counts")
        return verification
    if commitments[0] != group_key:
        failures.append(f"{name}: group key is not the first commitment")
    for index in range(1, replicas + 1):
        expected = bytes(32)
        for power, commitment in enumerate(commitments):
            expected = add(expected, multiply(pow(index, power, L), commitment))
        if expected != verification[index - 1]:
            failures.append(f"{name}: verification key {index} does not match the commitments")
    for start in range(0, replicas - faulty):
        indices = list(range(start + 1, start + faulty + 2))
        combined = bytes(32)
        for index in indices:
            combined = add(combined, multiply(lagrange_at_zero(index, indices), verification[index - 1]))
        if combined != group_key:
            failures.append(f"{name}: verification keys {indices} do not interpolate to the group key")
    return verification


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    folder = sys.argv[1]
    with open(os.path.join(folder, "cluster.json")) as handle:
        cluster = json.load(handle)
    replicas, faulty = cluster["replicas"], cluster["faulty"]
    failures = []
    if replicas < 3 * faulty + 1:
        failures.append("n < 3t + 1")
    coin = check_threshold_key("coin", cluster["coin"], replicas, faulty, failures)
    encryption = check_threshold_key("encryption", cluster["encryption"], replicas, faulty, failures)
    secrets = sorted(glob.glob(os.path.join(folder, "replica-*.secret")))
    for path in secrets:
        with open(path) as handle:
            secret = json.load(handle)
        index = secret["index"]
        if base_multiply(bytes.fromhex(secret["coinShare"])) != coin[index - 1]:
            failures.append(f"{path}: coin share does not match verification key {index}")
        if base_multiply(bytes.fromhex(secret["encryptionShare"])) != encryption[index - 1]:
            failures.append(f"{path}: encryption share does not match verification key {index}")
        public_key = ctypes.create_string_buffer(32)
        secret_key = ctypes.create_string_buffer(64)
        sodium.crypto_sign_seed_keypair(public_key, secret_key, bytes.fromhex(secret["identitySeed"]))
        if public_key.raw.hex() != cluster["members"][index - 1]["identityKey"]:
            failures.append(f"{path}: Ed25519 seed does not give member {index}'s public key")
        if (os.stat(path).st_mode & 0o777) != 0o600:
            failures.append(f"{path}: mode is not 0600")
    for failure in failures:
        print("FAIL", failure)
    print(f"checked n = {replicas}, t = {faulty}: 2 threshold keys, {len(secrets)} secret files, "
          f"{len(failures)} failures (libsodium {ctypes.c_char_p(sodium.sodium_version_string()).value.decode()})")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    sodium.sodium_version_string.restype = ctypes.c_void_p
    main()
