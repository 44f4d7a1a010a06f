// Synthetic query and ingest photographs for the load and fault scripts (never real data).
import sharp from 'sharp';

/** A synthetic fundus JPEG (default 1024x768); `seed` varies the picture. */
export async function syntheticJpeg(seed, { width = 1024, height = 768 } = {}) {
  const pixels = Buffer.alloc(width * height * 3);
  const radius = Math.min(width, height) * 0.47;
  for (let y = 0; y < height; y += 1) for (let x = 0; x < width; x += 1) {
    const r = Math.hypot(x - width / 2, y - height / 2);
    if (r > radius) continue;
    const i = (y * width + x) * 3, shade = 1 - r / (radius * 1.4);
    pixels[i] = 190 * shade + (seed % 7) * 3; pixels[i + 1] = 90 * shade + (seed % 5) * 4; pixels[i + 2] = 40 * shade;
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } }).jpeg({ quality: 90 }).toBuffer();
}

/** The same picture with a JPEG comment (COM segment) after SOI: other bytes, so another SHA-256, same pixels. */
export function withComment(jpeg, text) {
  const comment = Buffer.from(text, 'latin1');
  const segment = Buffer.alloc(4);
  segment.writeUInt16BE(0xfffe, 0);
  segment.writeUInt16BE(comment.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), segment, comment, jpeg.subarray(2)]);
}
