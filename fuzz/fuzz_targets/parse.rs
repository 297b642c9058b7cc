//! `Message::parse` on arbitrary bytes: no input may panic, hang or read out of
//! bounds; an accepted message is checked by [`common::check_message`].
#![no_main]

use coresip::sip::message::Message;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::parse(data) {
        common::check_message(data, &msg);
    }
});
