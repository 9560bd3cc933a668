//! End-to-end: WAV files generated here → `to_mp3` → decoded back with symphonia and checked
//! for length, channel count, bitrate, pitch and level. No binary fixtures.

use std::f64::consts::TAU;
use std::io::Cursor;
use std::time::Duration;

use casebridge_audio::{probe, to_mp3, AudioError, AudioFormat, Hint, MAX_DURATION};
use symphonia::core::audio::{AudioBuffer, Signal};
use symphonia::core::codecs::DecoderOptions;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::default::formats::MpaReader;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// A canonical 44-byte-header WAV. `format_tag` 1 = PCM, 7 = µ-law; `samples` are already
/// encoded and interleaved.
fn wav_with(format_tag: u16, rate: u32, channels: u16, bits: u16, samples: &[u8]) -> Vec<u8> {
    let block_align = channels * bits / 8;
    let fmt_len: u32 = if format_tag == 1 { 16 } else { 18 };
    let mut out = Vec::with_capacity(64 + samples.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(4 + 8 + fmt_len + 8 + samples.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&fmt_len.to_le_bytes());
    out.extend_from_slice(&format_tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    out.extend_from_slice(&block_align.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    if fmt_len == 18 {
        out.extend_from_slice(&0u16.to_le_bytes()); // cbSize
    }
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    out.extend_from_slice(samples);
    out
}

/// Amplitude of every test tone (half of full scale).
const AMPLITUDE: f64 = 0.5;

fn tone(freq: f64, i: u32, rate: u32) -> f64 {
    AMPLITUDE * (TAU * freq * f64::from(i) / f64::from(rate)).sin()
}

/// 16-bit PCM WAV; channel `c` carries a sine at `freqs[c]`.
fn sine_wav(rate: u32, seconds: f64, freqs: &[f64]) -> Vec<u8> {
    assert_eq!(
        44,
        wav_with(1, rate, freqs.len() as u16, 16, &[]).len(),
        "canonical 44-byte header"
    );
    let frames = (f64::from(rate) * seconds).round() as u32;
    let mut samples = Vec::with_capacity(frames as usize * freqs.len() * 2);
    for i in 0..frames {
        for &f in freqs {
            let s = (tone(f, i, rate) * 32767.0).round() as i16;
            samples.extend_from_slice(&s.to_le_bytes());
        }
    }
    wav_with(1, rate, freqs.len() as u16, 16, &samples)
}

/// G.711 µ-law, as telephone systems write it.
fn mulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut x = i32::from(sample);
    let sign = if x < 0 { 0x80 } else { 0 };
    x = x.abs().min(CLIP) + BIAS;
    let mut exponent = 7;
    while exponent > 0 && x & (0x4000 >> (7 - exponent)) == 0 {
        exponent -= 1;
    }
    let mantissa = (x >> (exponent + 3)) & 0x0f;
    !((sign | (exponent << 4) | mantissa) as u8)
}

/// Deterministic noise (xorshift), so the "random bytes" test is the same on every run.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

fn no_hint() -> Hint<'static> {
    Hint::default()
}

// ---------------------------------------------------------------------------------------------
// Checking an MP3

struct Decoded {
    rate: u32,
    /// One Vec per channel.
    channels: Vec<Vec<f32>>,
    /// The length the MP3's own header (Info tag) states.
    declared_frames: Option<u64>,
}

impl Decoded {
    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.channels[0].len() as f64 / f64::from(self.rate))
    }
}

/// Decodes an MP3 with symphonia's MP3 reader and decoder (gapless, so LAME's delay and padding
/// are trimmed as a player that reads the Info tag would).
fn decode_mp3(bytes: &[u8]) -> Decoded {
    let stream = MediaSourceStream::new(Box::new(Cursor::new(bytes.to_vec())), Default::default());
    let options = FormatOptions {
        enable_gapless: true,
        ..Default::default()
    };
    let mut reader = MpaReader::try_new(stream, &options).expect("an MP3 stream");
    let params = reader
        .default_track()
        .expect("a track")
        .codec_params
        .clone();
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .expect("an MP3 decoder");
    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut rate = 0;
    loop {
        let packet = match reader.next_packet() {
            Ok(p) => p,
            Err(symphonia::core::errors::Error::IoError(_)) => break,
            Err(e) => panic!("reading the MP3 failed: {e}"),
        };
        let decoded = decoder.decode(&packet).expect("every frame decodes");
        let mut buf: AudioBuffer<f32> = decoded.make_equivalent();
        decoded.convert(&mut buf);
        rate = buf.spec().rate;
        channels.resize(buf.spec().channels.count(), Vec::new());
        for (c, samples) in channels.iter_mut().enumerate() {
            samples.extend_from_slice(buf.chan(c));
        }
    }
    Decoded {
        rate,
        channels,
        declared_frames: params.n_frames,
    }
}

/// The frequency of a channel, from its zero crossings over the middle of the signal (the edges
/// hold the encoder's ramp-in and padding).
fn frequency(samples: &[f32], rate: u32) -> f64 {
    let middle = &samples[samples.len() / 5..samples.len() * 4 / 5];
    let crossings = middle
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f64 / 2.0 / (middle.len() as f64 / f64::from(rate))
}

fn rms(samples: &[f32]) -> f64 {
    let middle = &samples[samples.len() / 5..samples.len() * 4 / 5];
    (middle.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / middle.len() as f64).sqrt()
}

/// Bitrate (kbps) and sample rate of the MPEG layer III frame header at `b[0..4]`.
fn frame_header(b: &[u8]) -> (u32, u32) {
    assert_eq!(b[0], 0xff, "frame sync");
    assert_eq!(b[1] & 0xe0, 0xe0, "frame sync");
    assert_eq!((b[1] >> 1) & 3, 1, "layer III");
    let version = (b[1] >> 3) & 3;
    let index = usize::from(b[2] >> 4);
    let kbps = if version == 3 {
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ][index]
    } else {
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160][index]
    };
    let base = [44_100, 48_000, 32_000][usize::from((b[2] >> 2) & 3)];
    let rate = match version {
        3 => base,
        2 => base / 2,
        _ => base / 4,
    };
    (kbps, rate)
}

/// The length of the MPEG frame that starts at `b[0]`.
fn frame_len(b: &[u8]) -> usize {
    let (kbps, rate) = frame_header(b);
    let padding = usize::from((b[2] >> 1) & 1);
    let per_frame = if (b[1] >> 3) & 3 == 3 { 144 } else { 72 };
    (per_frame * kbps * 1000 / rate) as usize + padding
}

/// Asserts what every transcoded MP3 must satisfy and returns it decoded.
fn check_mp3(
    mp3: &casebridge_audio::Mp3,
    source_seconds: f64,
    channels: usize,
    kbps: u32,
    rate: u32,
) -> Decoded {
    assert!(mp3.transcoded);
    let b = &mp3.bytes;
    assert!(
        b.starts_with(b"ID3") || (b[0] == 0xff && b[1] & 0xe0 == 0xe0),
        "starts with a frame sync or an ID3 tag: {:02x?}",
        &b[..4]
    );
    // The first frame is LAME's Info tag (CBR), the second is audio; both carry our settings.
    let first = frame_len(b);
    // The tag follows the header and the side information, whose size depends on MPEG version
    // (MPEG 1 from 32 kHz up) and channel count.
    let side_info = match (rate >= 32_000, channels == 1) {
        (true, true) => 17,
        (true, false) => 32,
        (false, true) => 9,
        (false, false) => 17,
    };
    let tag_at = 4 + side_info;
    assert_eq!(
        &b[tag_at..tag_at + 4],
        b"Info",
        "a CBR Info tag in the first frame"
    );
    assert_eq!(
        frame_header(&b[first..]),
        (kbps, rate),
        "bitrate and sample rate"
    );
    assert_eq!(b[first + 3] >> 6 == 3, channels == 1, "channel mode");

    let decoded = decode_mp3(b);
    assert_eq!(decoded.rate, rate);
    assert_eq!(decoded.channels.len(), channels, "channel count kept");

    // Within 5% of the source plus one frame of encoder padding (with the Info tag the trimmed
    // length is in fact exact to within a frame).
    let slack = 0.05 * source_seconds + 1152.0 / f64::from(rate);
    let got = decoded.duration().as_secs_f64();
    assert!(
        (got - source_seconds).abs() <= slack,
        "decoded {got:.3} s for a {source_seconds} s source"
    );
    let declared = decoded
        .declared_frames
        .expect("the Info tag states the length") as f64;
    assert!((declared / f64::from(rate) - source_seconds).abs() <= slack);
    assert!(
        (mp3.duration.as_secs_f64() - source_seconds).abs() < 0.001,
        "reported duration {:?} for {source_seconds} s",
        mp3.duration
    );
    decoded
}

fn assert_tone(samples: &[f32], rate: u32, freq: f64) {
    let got = frequency(samples, rate);
    assert!(
        (got - freq).abs() < freq * 0.02,
        "expected a {freq} Hz tone, found {got:.1} Hz"
    );
    // A sine at half of full scale has an RMS of 0.354; lossy coding moves it a little.
    let level = rms(samples);
    assert!(
        (level - AMPLITUDE / 2f64.sqrt()).abs() < 0.05,
        "level {level:.3} (sample scaling wrong?)"
    );
}

// ---------------------------------------------------------------------------------------------
// WAV → MP3

#[test]
fn wav_8k_mono_becomes_64k_mono_mp3() {
    let wav = sine_wav(8_000, 1.0, &[440.0]);
    let hint = Hint {
        content_type: Some("audio/wav"),
        file_name: Some("call.wav"),
    };
    let mp3 = to_mp3(&wav, hint).unwrap();
    assert_eq!(mp3.source, AudioFormat::Wav);
    let decoded = check_mp3(&mp3, 1.0, 1, 64, 8_000);
    assert_tone(&decoded.channels[0], decoded.rate, 440.0);
}

#[test]
fn wav_44k_stereo_becomes_128k_stereo_mp3() {
    // Different tones left and right: the MP3 must keep them apart, not just have two channels.
    let wav = sine_wav(44_100, 2.5, &[440.0, 660.0]);
    let mp3 = to_mp3(&wav, no_hint()).unwrap();
    assert_eq!(mp3.source, AudioFormat::Wav);
    let decoded = check_mp3(&mp3, 2.5, 2, 128, 44_100);
    assert_tone(&decoded.channels[0], decoded.rate, 440.0);
    assert_tone(&decoded.channels[1], decoded.rate, 660.0);
}

#[test]
fn wav_96k_is_resampled_to_48k() {
    let wav = sine_wav(96_000, 1.0, &[440.0]);
    let mp3 = to_mp3(&wav, no_hint()).unwrap();
    let decoded = check_mp3(&mp3, 1.0, 1, 64, 48_000);
    // Same pitch after resampling: the rate change did not speed the audio up or down.
    assert_tone(&decoded.channels[0], decoded.rate, 440.0);
}

#[test]
fn odd_low_rate_is_resampled_up() {
    // 7.35 kHz (an AAC rate some dialers use) is not an MP3 rate; 8 kHz is the nearest.
    let wav = sine_wav(7_350, 1.0, &[440.0]);
    let mp3 = to_mp3(&wav, no_hint()).unwrap();
    let decoded = check_mp3(&mp3, 1.0, 1, 64, 8_000);
    assert_tone(&decoded.channels[0], decoded.rate, 440.0);
}

#[test]
fn four_channels_are_downmixed_to_stereo() {
    // FL FR FC LFE: left 440 Hz, right 660 Hz, centre and LFE silent.
    let wav = sine_wav(16_000, 1.0, &[440.0, 660.0, 0.0, 0.0]);
    let mp3 = to_mp3(&wav, no_hint()).unwrap();
    let decoded = check_mp3(&mp3, 1.0, 2, 128, 16_000);
    assert_eq!(frequency(&decoded.channels[0], 16_000).round(), 440.0);
    assert_eq!(frequency(&decoded.channels[1], 16_000).round(), 660.0);
}

#[test]
fn mulaw_telephone_wav_converts() {
    let rate = 8_000;
    let samples: Vec<u8> = (0..rate)
        .map(|i| mulaw((tone(440.0, i, rate) * 32767.0) as i16))
        .collect();
    let wav = wav_with(7, rate, 1, 8, &samples);
    let mp3 = to_mp3(&wav, no_hint()).unwrap();
    let decoded = check_mp3(&mp3, 1.0, 1, 64, 8_000);
    assert_tone(&decoded.channels[0], decoded.rate, 440.0);
}

// ---------------------------------------------------------------------------------------------
// MP3 input

#[test]
fn mp3_input_is_passed_through_byte_identical() {
    let made = to_mp3(&sine_wav(8_000, 1.0, &[440.0]), no_hint()).unwrap();
    let again = to_mp3(&made.bytes, no_hint()).unwrap();
    assert!(!again.transcoded);
    assert_eq!(again.source, AudioFormat::Mp3);
    assert_eq!(again.bytes, made.bytes, "byte-identical");
    assert!(
        (again.duration.as_secs_f64() - 1.0).abs() < 0.01,
        "{:?}",
        again.duration
    );

    let info = probe(&made.bytes, no_hint()).unwrap();
    assert_eq!(info.format, AudioFormat::Mp3);
    assert_eq!((info.sample_rate, info.channels), (Some(8_000), Some(1)));
}

#[test]
fn mp3_with_id3_tag_is_passed_through_byte_identical() {
    let made = to_mp3(&sine_wav(44_100, 1.0, &[440.0, 440.0]), no_hint()).unwrap();
    // An ID3v2.4 tag with one 20-byte frame's worth of body.
    let mut tagged = b"ID3\x04\x00\x00\x00\x00\x00\x14".to_vec();
    tagged.extend_from_slice(b"TIT2\x00\x00\x00\x0a\x00\x00\x03Call 1234");
    tagged.extend_from_slice(&made.bytes);
    let again = to_mp3(&tagged, no_hint()).unwrap();
    assert!(!again.transcoded);
    assert_eq!(again.bytes, tagged);
}

#[test]
fn mp3_behind_junk_is_found_when_the_name_says_mp3() {
    let made = to_mp3(&sine_wav(8_000, 1.0, &[440.0]), no_hint()).unwrap();
    let mut junk = vec![0x55; 300];
    junk.extend_from_slice(&made.bytes);
    assert!(matches!(
        to_mp3(&junk, no_hint()),
        Err(AudioError::NotAudio(_))
    ));
    let hint = Hint {
        content_type: Some("audio/mpeg"),
        file_name: None,
    };
    let again = to_mp3(&junk, hint).unwrap();
    assert!(!again.transcoded);
    assert_eq!(again.bytes, junk);
}

// ---------------------------------------------------------------------------------------------
// Not audio, damaged, too long

#[test]
fn random_bytes_are_not_audio() {
    for seed in 1..=20 {
        let bytes = noise(64 * 1024, seed);
        let err = to_mp3(&bytes, no_hint()).unwrap_err();
        assert!(matches!(err, AudioError::NotAudio(_)), "seed {seed}: {err}");
        assert!(matches!(
            probe(&bytes, no_hint()),
            Err(AudioError::NotAudio(_))
        ));
        // Even when the name claims MP3 (which widens the search for a first frame).
        let hint = Hint {
            content_type: Some("audio/mpeg"),
            file_name: Some("call.mp3"),
        };
        let err = to_mp3(&bytes, hint).unwrap_err();
        assert!(matches!(err, AudioError::NotAudio(_)), "seed {seed}: {err}");
    }
}

#[test]
fn empty_input_is_not_audio() {
    let hint = Hint {
        content_type: None,
        file_name: Some("call.wav"),
    };
    let err = to_mp3(&[], hint).unwrap_err();
    assert_eq!(err, AudioError::NotAudio("'call.wav' is empty".to_owned()));
    assert_eq!(
        err.to_string(),
        "not an audio recording: 'call.wav' is empty"
    );
    assert!(matches!(
        probe(&[], no_hint()),
        Err(AudioError::NotAudio(_))
    ));
}

#[test]
fn a_web_page_is_not_audio_and_says_so() {
    let err = to_mp3(
        b"<!DOCTYPE html><html><body>Session expired</body></html>",
        no_hint(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, AudioError::NotAudio(m) if m.contains("HTML page")),
        "{err}"
    );
}

/// Decision: a WAV cut off mid-recording converts the audio it holds (the header's sizes are
/// corrected to the bytes present). Only a WAV with no samples at all is `Corrupt`.
#[test]
fn truncated_wav_converts_the_audio_it_holds() {
    let full = sine_wav(8_000, 2.0, &[440.0]);
    // Header says 2 s; only 1 s (+ half a sample, as a cut at any byte would leave) is there.
    let cut = &full[..44 + 16_000 + 1];
    let info = probe(cut, no_hint()).unwrap();
    assert_eq!(info.duration, Some(Duration::from_secs(1)));
    let mp3 = to_mp3(cut, no_hint()).unwrap();
    assert_eq!(mp3.duration, Duration::from_secs(1));
    let decoded = check_mp3(&mp3, 1.0, 1, 64, 8_000);
    assert_tone(&decoded.channels[0], decoded.rate, 440.0);
}

#[test]
fn wav_header_without_samples_is_corrupt() {
    let full = sine_wav(8_000, 1.0, &[440.0]);
    let header_only = &full[..44];
    let err = to_mp3(header_only, no_hint()).unwrap_err();
    assert!(matches!(err, AudioError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("WAV"), "{err}");
    let err = probe(header_only, no_hint()).unwrap_err();
    assert!(matches!(err, AudioError::Corrupt(_)), "{err}");
}

#[test]
fn wav_cut_inside_its_header_is_corrupt() {
    let full = sine_wav(8_000, 1.0, &[440.0]);
    let err = to_mp3(&full[..30], no_hint()).unwrap_err();
    assert!(matches!(err, AudioError::Corrupt(_)), "{err}");
}

#[test]
fn gsm_wav_is_unsupported_and_named() {
    let mut wav = wav_with(1, 8_000, 1, 16, &[0; 650]);
    wav[20..22].copy_from_slice(&0x0031u16.to_le_bytes()); // WAVE_FORMAT_GSM610
    let err = to_mp3(&wav, no_hint()).unwrap_err();
    assert!(
        matches!(&err, AudioError::Unsupported(m) if m.contains("GSM 6.10")),
        "{err}"
    );
}

#[test]
fn longer_than_four_hours_is_refused_before_decoding() {
    // 8-bit PCM at 1 kHz keeps 4 hours to 14 MB.
    let seconds = MAX_DURATION.as_secs() + 10;
    let samples = vec![0x80u8; seconds as usize * 1_000];
    let wav = wav_with(1, 1_000, 1, 8, &samples);
    let expected = AudioError::TooLong {
        length: Some(Duration::from_secs(seconds)),
        limit: MAX_DURATION,
    };
    assert_eq!(probe(&wav, no_hint()).unwrap_err(), expected);
    assert_eq!(to_mp3(&wav, no_hint()).unwrap_err(), expected);
    assert_eq!(
        expected.to_string(),
        "recording too long: it is 4:00:10 long (the limit is 4:00:00)"
    );
}

// ---------------------------------------------------------------------------------------------
// probe

#[test]
fn probe_reports_wav_format_and_duration() {
    let info = probe(&sine_wav(8_000, 1.0, &[440.0]), no_hint()).unwrap();
    assert_eq!(info.format, AudioFormat::Wav);
    assert_eq!(info.duration, Some(Duration::from_secs(1)));
    assert_eq!(info.sample_rate, Some(8_000));
    assert_eq!(info.channels, Some(1));

    let info = probe(&sine_wav(44_100, 2.5, &[440.0, 660.0]), no_hint()).unwrap();
    assert_eq!(info.format, AudioFormat::Wav);
    assert_eq!(info.duration, Some(Duration::from_millis(2_500)));
    assert_eq!(info.sample_rate, Some(44_100));
    assert_eq!(info.channels, Some(2));
}
