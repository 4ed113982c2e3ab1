#!/bin/sh
# Regenerates the test PKI used by tests/unit/test_tls.c: a CA and a leaf
# certificate for localhost / 127.0.0.1 / ::1, both valid for 20 years.
# Test material only: the keys are public.
set -eu
cd "$(dirname "$0")"
openssl ecparam -name prime256v1 -genkey -noout -out ca.key
openssl req -x509 -new -key ca.key -sha256 -days 7300 \
    -subj "/CN=tracestitch test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.pem
openssl ecparam -name prime256v1 -genkey -noout -out server.key
openssl req -new -key server.key -subj "/CN=localhost" -out server.csr
printf '%s\n' "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
    -sha256 -days 7300 -extfile server.ext -out server.pem
rm -f server.csr server.ext ca.srl
# A key that matches nothing, for the "key does not match" test.
openssl ecparam -name prime256v1 -genkey -noout -out other.key
