#!/usr/bin/env bash
# A private CA and the certificates signed by it, for TLS tests (tests/daemon.rs) and as an
# example of what a broker with its own CA needs (README: "TLS to the broker").
#
#   tests/tls/make-certs.sh DIR
#
# DIR/ca.pem           the CA: what smplcast's mqtt.ca_file names
# DIR/server.pem/.key  the broker's certificate, for 127.0.0.1 only (no DNS name)
# DIR/client.pem/.key  a client certificate (mqtt.client_cert_file / client_key_file)
# DIR/other-ca.pem     another CA, which signed none of these (the "wrong CA" case)
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}
# leaf NAME CN EXTENSIONS: a certificate signed by ca.pem
leaf() {
    key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2"
    printf '%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm "$1.csr" "$1.ext"
}
ca ca "smplcast test CA"
ca other-ca "some other CA"
leaf server "mqtt broker" "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf client "smplcast client" "extendedKeyUsage=clientAuth"
# Throwaway test keys, readable by all: mosquitto started as root drops to its own user
# before it reads them. (A real broker key is readable by the broker's user only.)
chmod 644 ./*.key
