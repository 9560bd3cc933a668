//! Times `to_mp3` on generated 60-second WAVs (speech-like: a few tones with a syllable-rate
//! envelope and a little noise). Run with
//! `cargo run --release -p casebridge-audio --example transcode_timing`.

use std::f64::consts::TAU;
use std::time::Instant;

use casebridge_audio::{to_mp3, Hint};

fn wav(rate: u32, channels: u16, seconds: u32) -> Vec<u8> {
    let frames = rate * seconds;
    let data_len = frames * u32::from(channels) * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
    out.extend_from_slice(&(channels * 2).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..frames {
        let t = f64::from(i) / f64::from(rate);
        let envelope = (TAU * 4.0 * t).sin().abs();
        for c in 0..channels {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let noise = (seed >> 40) as f64 / f64::from(1u32 << 24) - 0.5;
            let voice = [180.0, 360.0, 720.0, 1400.0]
                .iter()
                .map(|f| (TAU * (f + 20.0 * f64::from(c)) * t).sin())
                .sum::<f64>()
                / 4.0;
            let s = (0.4 * envelope * voice + 0.02 * noise) * 32767.0;
            out.extend_from_slice(&(s as i16).to_le_bytes());
        }
    }
    out
}

fn main() {
    for (rate, channels) in [(8_000, 1), (44_100, 2)] {
        let input = wav(rate, channels, 60);
        let start = Instant::now();
        let mp3 = to_mp3(&input, Hint::default()).expect("transcodes");
        let took = start.elapsed();
        println!(
            "60 s {rate} Hz {channels} ch WAV ({} KB) -> MP3 {} KB in {:.3} s ({:.0}x real time)",
            input.len() / 1024,
            mp3.bytes.len() / 1024,
            took.as_secs_f64(),
            60.0 / took.as_secs_f64()
        );
    }
}
