# lib.sh: what the shipping checks (tests/ship/*.sh) share. Sourced, not run.
#
# Everything here reads an installed tree (PREFIX, made by install.sh), never
# a list kept by hand: the public headers are PREFIX/include/goctx.h and
# PREFIX/include/goctx/*.h, the shared libraries PREFIX/lib*/libgoctx*.so.
# A header goctx/NAME.h belongs to the bridge library libgoctx-NAME.so when
# that library is installed, and to libgoctx.so otherwise.

# ship_headers PREFIX: the installed public headers, one path a line.
ship_headers() {
  for _sh in "$1"/include/goctx.h "$1"/include/goctx/*.h; do
    [ -f "$_sh" ] && echo "$_sh"
  done
}

# ship_libdir PREFIX: the directory holding libgoctx.so.
ship_libdir() {
  _sd=$(find "$1" -name libgoctx.so -print | head -n 1)
  [ -n "$_sd" ] || { echo "ship: no libgoctx.so under $1" >&2; return 1; }
  dirname "$_sd"
}

# ship_header_lib PREFIX HEADER: the library name (libgoctx, libgoctx-uv...)
# that defines the functions HEADER declares.
ship_header_lib() {
  _sb=$(basename "$2" .h)
  _sl=$(ship_libdir "$1") || return 1
  case $2 in
    */include/goctx/*.h)
      if [ -e "$_sl/libgoctx-$_sb.so" ]; then
        echo "libgoctx-$_sb"
        return 0
      fi ;;
  esac
  echo libgoctx
}

# ship_cflags PREFIX LIB: the flags to compile against LIB's headers (its
# pkg-config file, which names the libraries a bridge header includes).
ship_cflags() {
  _sl=$(ship_libdir "$1") || return 1
  _sp=${2#lib}
  if [ -f "$_sl/pkgconfig/$_sp.pc" ] && command -v pkg-config >/dev/null 2>&1; then
    PKG_CONFIG_PATH=$_sl/pkgconfig pkg-config --cflags "$_sp"
  else
    echo "-I$1/include"
  fi
}

# ship_decls PREFIX HEADER KIND: the functions HEADER itself declares (not
# those of the headers it includes), as the compiler sees them (gcc's
# -aux-info), one name a line. KIND extern: the functions with external
# linkage, which the library must export; KIND inline: the static inline
# ones, which it may export as well (an inline fast path keeps its
# out-of-line symbol for binaries built before it).
ship_decls() {
  _st=${TMPDIR:-/tmp}/ship-decls.$$
  printf '#include "%s"\n' "$2" >"$_st.c"
  # shellcheck disable=SC2046  # flags are words
  if ! gcc -std=gnu11 $(ship_cflags "$1" "$(ship_header_lib "$1" "$2")") \
       -aux-info "$_st.txt" -fsyntax-only -o /dev/null "$_st.c" 2>"$_st.err"; then
    echo "ship: $2 does not compile on its own:" >&2
    cat "$_st.err" >&2
    rm -f "$_st.c" "$_st.txt" "$_st.err"
    return 1
  fi
  # Lines look like "/* PATH:LINE:NC */ extern ctx_t *ctx_todo (void);"; the
  # name is the first identifier followed by " (" and not by "*".
  case $3 in
    extern) _sw='^extern ' ;;
    inline) _sw='^static ' ;;
  esac
  awk -v path="$2" '{
      file = $2; sub(/:[0-9]+:[A-Z]+$/, "", file)
      if (file != path) next
      sub(/^\/\* [^*]* \*\/ /, "")
      print
    }' "$_st.txt" | grep "$_sw" |
    sed -n 's/^[^(]*[^A-Za-z0-9_(]\([A-Za-z_][A-Za-z0-9_]*\) ([^*].*/\1/p;
            t; s/.*[^A-Za-z0-9_]\([A-Za-z_][A-Za-z0-9_]*\) ([^*].*/\1/p' | sort -u
  rm -f "$_st.c" "$_st.txt" "$_st.err"
}

# ship_exports SOFILE: the symbols SOFILE defines for other objects, as
# NAME@VERSION (NAME alone when unversioned), one a line. The version
# nodes themselves (absolute symbols) are left out.
ship_exports() {
  nm -D --defined-only "$1" | awk '$2 != "A" { print $3 }' | sed 's/@@*/@/' | sort -u
}

# ship_objects SOFILE: the names of the data objects (not functions) among
# SOFILE's exports, one a line.
ship_objects() {
  nm -D --defined-only "$1" | awk '$2 ~ /^[BDGRSV]$/ { print $3 }' | sed 's/@.*//' | sort -u
}
