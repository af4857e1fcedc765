#!/bin/bash
# make_certs.sh DIR — the TLS suite's own PKI, made with the openssl command into DIR (idempotent:
# DIR/.done marks a finished run). A CA; a server certificate for localhost / 127.0.0.1 / ::1; an
# expired one and a wrong-host one from the same CA; a self-signed one; a second server name
# (other.test) for SNI; a client CA with a client certificate; an intermediate CA under the CA
# and a server certificate it issued (chained-chain.crt: leaf then intermediate); a directory of
# trusted CAs hashed by `openssl rehash` (cadir/). EC P-256 keys: fast to make.
set -euo pipefail
dir=${1:?usage: make_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
[ -f .done ] && [ -d cadir ] && exit 0 # (cadir: the newest part; an older run is redone)
rm -rf ca-db && mkdir -p ca-db && touch ca-db/index.txt && echo 1000 > ca-db/serial

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
# ca NAME CN: a self-signed CA certificate NAME.crt with key NAME.key
ca() {
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -sha256 -days 3650 -subj "/CN=$2" -out "$1.crt" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}
# leaf NAME CA CN SAN EKU [startdate enddate]: NAME.crt/NAME.key signed by CA, via `openssl ca` so
# the dates can lie in the past (the expired certificate).
leaf() {
    local name=$1 ca=$2 cn=$3 san=$4 eku=$5 start=${6:-} end=${7:-}
    key "$name.key"
    openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$name.csr"
    cat > "$name.cnf" <<CNF
[ca]
default_ca = c
[c]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
default_md = sha256
policy = p
unique_subject = no
copy_extensions = none
[p]
commonName = supplied
[ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = $eku
subjectAltName = $san
CNF
    local dates=(-days 825)
    [ -n "$start" ] && dates=(-startdate "$start" -enddate "$end")
    openssl ca -batch -config "$name.cnf" -cert "$ca.crt" -keyfile "$ca.key" -in "$name.csr" \
        -out "$name.crt" -extensions ext -notext "${dates[@]}" 2>/dev/null
    rm -f "$name.csr" "$name.cnf"
}

ca ca "simul test CA"
leaf server ca localhost "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth
leaf server2 ca "localhost reloaded" "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth # for reload
leaf other ca other.test "DNS:other.test" serverAuth                         # for SNI
leaf expired ca localhost "DNS:localhost,IP:127.0.0.1" serverAuth 20200101000000Z 20200201000000Z
leaf wronghost ca wrong.example "DNS:wrong.example" serverAuth
key selfsigned.key
openssl req -x509 -new -key selfsigned.key -sha256 -days 825 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out selfsigned.crt
# an intermediate CA signed by the CA, and a leaf under it: servers must send the chain
key inter.key
openssl req -new -key inter.key -subj "/CN=simul test intermediate CA" -out inter.csr
printf 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n' \
    > inter.ext
openssl x509 -req -in inter.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -sha256 \
    -extfile inter.ext -out inter.crt 2>/dev/null
rm -f inter.csr inter.ext
leaf chained inter localhost "DNS:localhost,IP:127.0.0.1,IP:::1" serverAuth
cat chained.crt inter.crt > chained-chain.crt
rm -rf cadir && mkdir cadir && cp ca.crt cadir/ && openssl rehash cadir
ca clientca "simul test client CA"
leaf client clientca "simul test client" "DNS:client.test" clientAuth
touch .done
