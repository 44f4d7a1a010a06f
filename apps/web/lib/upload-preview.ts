// The chosen photograph's preview, kept in the tab's sessionStorage under its upload token, so the heat-map
// overlay survives the page reloads that changing a filter makes (the API does not serve the photograph back).
// Downscaled: sessionStorage holds a few MB and an upload may be 20 MB. Browser only.
const KEY_PREFIX = 'fundus-cbr:upload-preview:';
const PREVIEW_MAX_SIDE = 768;

export async function storeUploadPreview(uploadToken: string, file: Blob): Promise<void> {
  const objectUrl = URL.createObjectURL(file);
  try {
    const image = new Image();
    image.src = objectUrl;
    await image.decode();
    const scale = Math.min(1, PREVIEW_MAX_SIDE / Math.max(image.naturalWidth, image.naturalHeight));
    const canvas = document.createElement('canvas');
    canvas.width = Math.max(1, Math.round(image.naturalWidth * scale));
    canvas.height = Math.max(1, Math.round(image.naturalHeight * scale));
    canvas.getContext('2d')?.drawImage(image, 0, 0, canvas.width, canvas.height);
    sessionStorage.setItem(KEY_PREFIX + uploadToken, canvas.toDataURL('image/jpeg', 0.85));
  } catch {
    // A format the browser cannot draw (TIFF in most), or storage full: the heat map is shown on its own.
  } finally {
    URL.revokeObjectURL(objectUrl);
  }
}

export function readUploadPreview(uploadToken: string): string | null {
  try {
    return sessionStorage.getItem(KEY_PREFIX + uploadToken);
  } catch {
    return null;
  }
}
