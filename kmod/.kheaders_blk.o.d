/work/main/kmod/.kheaders_blk.o.d: /work/main/kmod/kheaders_blk.rs /work/main/kmod/blk_ext.rs /work/main/kmod/crc32.rs /work/main/kmod/image.rs /work/main/kmod/kheaders.img ./rust/libcore.rmeta ./rust/libkernel.rmeta ./rust/libffi.rmeta ./rust/libcompiler_builtins.rmeta ./rust/libmacros.so ./rust/libbindings.rmeta ./rust/libuapi.rmeta ./rust/libbuild_error.rmeta

/work/main/kmod/kheaders_blk.o: /work/main/kmod/kheaders_blk.rs /work/main/kmod/blk_ext.rs /work/main/kmod/crc32.rs /work/main/kmod/image.rs /work/main/kmod/kheaders.img ./rust/libcore.rmeta ./rust/libkernel.rmeta ./rust/libffi.rmeta ./rust/libcompiler_builtins.rmeta ./rust/libmacros.so ./rust/libbindings.rmeta ./rust/libuapi.rmeta ./rust/libbuild_error.rmeta

/work/main/kmod/kheaders_blk.rs:
/work/main/kmod/blk_ext.rs:
/work/main/kmod/crc32.rs:
/work/main/kmod/image.rs:
/work/main/kmod/kheaders.img:
./rust/libcore.rmeta:
./rust/libkernel.rmeta:
./rust/libffi.rmeta:
./rust/libcompiler_builtins.rmeta:
./rust/libmacros.so:
./rust/libbindings.rmeta:
./rust/libuapi.rmeta:
./rust/libbuild_error.rmeta:

# env-dep:KHEADERS_KERNELRELEASE=6.12.117
