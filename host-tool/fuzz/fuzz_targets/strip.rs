#![no_main]
libfuzzer_sys::fuzz_target!(init: kheaders_image_fuzz::init(), |data: &[u8]| {
    kheaders_image_fuzz::checks::strip(data);
    kheaders_image_fuzz::coverage::after_input();
});
