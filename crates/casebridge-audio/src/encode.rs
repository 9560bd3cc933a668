//! The LAME side: CBR MP3, fed one decoded packet at a time.

use std::num::NonZeroU32;
use std::time::Duration;

use mp3lame_encoder::{
    max_required_buffer_size, Bitrate, Builder, DualPcm, Encoder, FlushGap, Mode, MonoPcm, Quality,
    VbrMode,
};
use symphonia::core::audio::{AudioBuffer, Channels, Signal};

use crate::AudioError;

/// The sample rates an MP3 can carry (MPEG 1, 2 and 2.5).
pub(crate) const MP3_RATES: [u32; 9] = [
    8_000, 11_025, 12_000, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000,
];

/// The MP3 rate for a source rate: itself when MP3 can carry it, else the nearest one (ties go
/// up, to keep more bandwidth).
pub(crate) fn output_rate(source_rate: u32) -> u32 {
    MP3_RATES
        .iter()
        .copied()
        .min_by_key(|&r| (r.abs_diff(source_rate), u32::MAX - r))
        .unwrap_or(8_000)
}

/// 64 kbps mono, 128 kbps stereo; MPEG 2.5 (8–12 kHz) stops at 64 kbps in LAME, so low-rate
/// stereo gets 64 kbps too.
pub(crate) fn bitrate(out_rate: u32, stereo: bool) -> Bitrate {
    if stereo && out_rate > 12_000 {
        Bitrate::Kbps128
    } else {
        Bitrate::Kbps64
    }
}

pub(crate) struct Mp3Writer {
    lame: Encoder,
    out: Vec<u8>,
    stereo: bool,
    /// Output rate / source rate, rounded up: LAME's output-buffer rule counts input samples.
    upsampling: usize,
    left: Vec<f32>,
    right: Vec<f32>,
    /// Downmix weights for the last channel layout seen with more than two channels.
    downmix: Option<(Channels, Vec<(f32, f32)>)>,
}

fn lame_error(what: &str, e: impl std::fmt::Display) -> AudioError {
    AudioError::Encode(format!("{what}: {e}"))
}

impl Mp3Writer {
    /// An encoder for `source_rate` Hz; mono when the source has one channel, stereo otherwise.
    /// `expected` (the declared length, if any) sizes the output buffer up front.
    pub fn new(
        source_rate: u32,
        source_channels: usize,
        expected: Option<Duration>,
    ) -> Result<Self, AudioError> {
        let stereo = source_channels > 1;
        let out_rate = output_rate(source_rate);
        let brate = bitrate(out_rate, stereo);
        let mut builder = Builder::new()
            .ok_or_else(|| AudioError::Encode("LAME could not allocate an encoder".to_owned()))?;
        builder
            .set_num_channels(if stereo { 2 } else { 1 })
            .map_err(|e| lame_error("channel count", e))?;
        builder
            .set_sample_rate(source_rate)
            .map_err(|e| lame_error("input sample rate", e))?;
        // When the source rate is not an MP3 rate, LAME resamples to this one.
        builder
            .set_output_sample_rate(NonZeroU32::new(out_rate))
            .map_err(|e| lame_error("output sample rate", e))?;
        builder
            .set_vbr_mode(VbrMode::Off)
            .map_err(|e| lame_error("CBR mode", e))?;
        builder
            .set_brate(brate)
            .map_err(|e| lame_error("bitrate", e))?;
        builder
            .set_mode(if stereo {
                Mode::JointStereo
            } else {
                Mode::Mono
            })
            .map_err(|e| lame_error("channel mode", e))?;
        builder
            .set_quality(Quality::Good)
            .map_err(|e| lame_error("quality", e))?;
        // The Info/LAME tag frame: exact length and gapless info for players.
        builder
            .set_to_write_vbr_tag(true)
            .map_err(|e| lame_error("Info tag", e))?;
        let lame = builder.build().map_err(|e| {
            lame_error(
                &format!(
                    "LAME refused {source_rate} Hz → {out_rate} Hz, {} kbps",
                    brate as u32
                ),
                e,
            )
        })?;

        let capacity = expected
            .map(|d| d.min(crate::MAX_DURATION).as_secs() as usize * (brate as usize) * 125)
            .unwrap_or(0)
            + 16 * 1024;
        Ok(Self {
            lame,
            out: Vec::with_capacity(capacity),
            stereo,
            upsampling: out_rate.div_ceil(source_rate.max(1)).max(1) as usize,
            left: Vec::new(),
            right: Vec::new(),
            downmix: None,
        })
    }

    /// Encodes one decoded packet. Any channel count is accepted: mono output averages the
    /// channels, stereo output duplicates a mono packet or downmixes more than two.
    pub fn write(&mut self, buf: &AudioBuffer<f32>) -> Result<(), AudioError> {
        let frames = buf.frames();
        if frames == 0 {
            return Ok(());
        }
        let channels = buf.spec().channels;
        let planes = buf.planes();
        let planes = planes.planes();
        self.out
            .reserve(max_required_buffer_size(frames * self.upsampling));

        let result = if !self.stereo {
            if planes.len() == 1 {
                self.lame.encode_to_vec(MonoPcm(planes[0]), &mut self.out)
            } else {
                average(planes, &mut self.left);
                self.lame
                    .encode_to_vec(MonoPcm(&self.left[..]), &mut self.out)
            }
        } else {
            match planes.len() {
                1 => self.lame.encode_to_vec(
                    DualPcm {
                        left: planes[0],
                        right: planes[0],
                    },
                    &mut self.out,
                ),
                2 => self.lame.encode_to_vec(
                    DualPcm {
                        left: planes[0],
                        right: planes[1],
                    },
                    &mut self.out,
                ),
                _ => {
                    let weights = match &mut self.downmix {
                        Some((layout, weights)) if *layout == channels => weights,
                        slot => &mut slot.insert((channels, downmix_weights(channels))).1,
                    };
                    downmix(planes, weights, &mut self.left, &mut self.right);
                    self.lame.encode_to_vec(
                        DualPcm {
                            left: &self.left[..],
                            right: &self.right[..],
                        },
                        &mut self.out,
                    )
                }
            }
        };
        result.map_err(|e| lame_error("encoding", e))?;
        Ok(())
    }

    /// Flushes LAME and writes the Info tag over the placeholder frame LAME put first.
    pub fn finish(mut self) -> Result<Vec<u8>, AudioError> {
        self.out.reserve(max_required_buffer_size(0) * 2);
        self.lame
            .flush_to_vec::<FlushGap>(&mut self.out)
            .map_err(|e| lame_error("flushing", e))?;
        let mut tag = Vec::with_capacity(self.lame.lame_tag_size());
        if let Some(written) = self.lame.lame_tag_encode_to_vec(&mut tag) {
            let at = self.lame.id3v2_tag_size();
            if let Some(slot) = self.out.get_mut(at..at + written.get()) {
                slot.copy_from_slice(&tag[..written.get()]);
            }
        }
        self.out.shrink_to_fit();
        Ok(self.out)
    }
}

fn average(planes: &[&[f32]], out: &mut Vec<f32>) {
    let scale = 1.0 / planes.len() as f32;
    out.clear();
    out.resize(planes[0].len(), 0.0);
    for plane in planes {
        for (o, s) in out.iter_mut().zip(plane.iter()) {
            *o += s * scale;
        }
    }
}

/// Per-channel (left, right) weights, each side normalised to sum to 1 so nothing clips.
/// Channels on the left go left, on the right go right, the rest (centre, LFE, top centre) go
/// to both. A 4-channel file with one participant per channel thus keeps everyone audible.
fn downmix_weights(channels: Channels) -> Vec<(f32, f32)> {
    let left = Channels::FRONT_LEFT
        | Channels::REAR_LEFT
        | Channels::FRONT_LEFT_CENTRE
        | Channels::SIDE_LEFT
        | Channels::TOP_FRONT_LEFT
        | Channels::TOP_REAR_LEFT
        | Channels::REAR_LEFT_CENTRE
        | Channels::FRONT_LEFT_WIDE
        | Channels::FRONT_LEFT_HIGH;
    let right = Channels::FRONT_RIGHT
        | Channels::REAR_RIGHT
        | Channels::FRONT_RIGHT_CENTRE
        | Channels::SIDE_RIGHT
        | Channels::TOP_FRONT_RIGHT
        | Channels::TOP_REAR_RIGHT
        | Channels::REAR_RIGHT_CENTRE
        | Channels::FRONT_RIGHT_WIDE
        | Channels::FRONT_RIGHT_HIGH;
    let raw: Vec<(f32, f32)> = channels
        .iter()
        .map(|c| {
            if left.contains(c) {
                (1.0, 0.0)
            } else if right.contains(c) {
                (0.0, 1.0)
            } else {
                (1.0, 1.0)
            }
        })
        .collect();
    let (sum_l, sum_r) = raw
        .iter()
        .fold((0.0, 0.0), |(l, r), (wl, wr)| (l + wl, r + wr));
    raw.into_iter()
        .map(|(wl, wr)| (wl / sum_l, wr / sum_r))
        .collect()
}

fn downmix(planes: &[&[f32]], weights: &[(f32, f32)], left: &mut Vec<f32>, right: &mut Vec<f32>) {
    let frames = planes[0].len();
    left.clear();
    left.resize(frames, 0.0);
    right.clear();
    right.resize(frames, 0.0);
    for (plane, &(wl, wr)) in planes.iter().zip(weights) {
        for ((l, r), s) in left.iter_mut().zip(right.iter_mut()).zip(plane.iter()) {
            *l += s * wl;
            *r += s * wr;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_map_to_the_nearest_mp3_rate() {
        assert_eq!(output_rate(8_000), 8_000);
        assert_eq!(output_rate(44_100), 44_100);
        assert_eq!(output_rate(96_000), 48_000);
        assert_eq!(output_rate(192_000), 48_000);
        assert_eq!(output_rate(7_350), 8_000);
        assert_eq!(output_rate(4_000), 8_000);
        assert_eq!(output_rate(37_800), 32_000);
        assert_eq!(output_rate(64_000), 48_000);
    }

    #[test]
    fn bitrates() {
        assert_eq!(bitrate(8_000, false) as u32, 64);
        assert_eq!(bitrate(8_000, true) as u32, 64);
        assert_eq!(bitrate(44_100, false) as u32, 64);
        assert_eq!(bitrate(44_100, true) as u32, 128);
        assert_eq!(bitrate(16_000, true) as u32, 128);
    }

    #[test]
    fn mono_output_averages_the_channels() {
        let (a, b) = ([1.0f32, 0.5, -1.0], [1.0f32, -0.5, 0.0]);
        let mut out = vec![9.0; 7];
        average(&[&a, &b], &mut out);
        assert_eq!(out, vec![1.0, 0.0, -0.5]);
    }

    #[test]
    fn surround_downmix_keeps_sides_and_shares_the_centre() {
        // 5.1 in WAV order: FL FR FC LFE SL SR.
        let layout = Channels::FRONT_LEFT
            | Channels::FRONT_RIGHT
            | Channels::FRONT_CENTRE
            | Channels::LFE1
            | Channels::SIDE_LEFT
            | Channels::SIDE_RIGHT;
        let w = downmix_weights(layout);
        assert_eq!(w.len(), 6);
        let (l, r): (f32, f32) = w.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        assert!((l - 1.0).abs() < 1e-6 && (r - 1.0).abs() < 1e-6);
        assert_eq!(w[1].0, 0.0, "front right stays out of the left side");
        assert_eq!(w[0].1, 0.0, "front left stays out of the right side");
        assert!(w[2].0 > 0.0 && w[2].1 > 0.0, "centre goes to both sides");
    }
}
