# shellcheck shell=bash
# kernel_cpp_flags HEADERS ARCH: preprocessor flags that use a header tree
# (a mount of /dev/kheaders0, an extracted tarball) as the kernel's own build
# does: LINUXINCLUDE and USERINCLUDE of the top Makefile, and the files it
# forces into every compile. Sourced by scripts/common.sh and by the VM tests.
kernel_cpp_flags() {
    local h="$1" a="$2"
    echo "-nostdinc -D__KERNEL__ -include $h/include/linux/compiler-version.h" \
         "-include $h/include/linux/kconfig.h -include $h/include/linux/compiler_types.h" \
         "-I$h/arch/$a/include -I$h/arch/$a/include/generated -I$h/include" \
         "-I$h/arch/$a/include/uapi -I$h/arch/$a/include/generated/uapi" \
         "-I$h/include/uapi -I$h/include/generated/uapi"
}

# compile_set HEADERS ARCH SOURCE [FLAGS...]: the headers below HEADERS that
# preprocessing SOURCE opens, relative, in the order gcc first opens them.
compile_set() {
    local h="$1" a="$2" src="$3"
    shift 3
    # shellcheck disable=SC2046
    gcc -M -MG $(kernel_cpp_flags "$h" "$a") "$@" "$src" 2>/dev/null |
        tr ' \\' '\n\n' | grep "^$h/" | sed "s|^$h/||" | awk '!seen[$0]++'
}
