// What a person is told when POST /uploads refuses a photograph, by the API's extensions.code and .reason
// (README "Search by a new photograph"). The API's own message follows, since it says what exactly was wrong.
const BY_REASON: Record<string, string> = {
  NO_FUNDUS: 'This does not look like a fundus photograph',
  EMPTY_FILE: 'The file is empty',
  NOT_AN_IMAGE: 'The file is not a photograph this site can read (JPEG, PNG, TIFF, WebP, GIF or AVIF)',
  VECTOR_IMAGE: 'The file is a drawing (SVG), not a photograph',
  MULTI_FRAME_IMAGE: 'The file holds several images (animated, or a multi-page TIFF): export the one photograph',
  TOO_MANY_PIXELS: 'The photograph has too many pixels',
  TOO_SMALL: 'The photograph is too small',
};

const BY_CODE: Record<string, string> = {
  UNSUPPORTED_MEDIA_TYPE: 'This type of file cannot be searched with: choose a JPEG, PNG, TIFF, WebP, GIF or AVIF photograph',
  PAYLOAD_TOO_LARGE: 'The file is too large to upload',
  EMBEDDING_UNAVAILABLE: 'Search by photograph is not available: the API has no embedding model loaded',
  FORBIDDEN: 'Your role may not search by photograph',
  RATE_LIMITED: 'Too many requests: wait a minute and try again',
  API_UNREACHABLE: 'The API could not be reached. Try again shortly',
  API_TIMEOUT: 'The API did not answer in time',
};

export function describeUploadRefusal({ code, reason, message }: { code: string; reason?: string | null; message?: string | null }): string {
  const lead = (reason && BY_REASON[reason]) ?? BY_CODE[code];
  // The API's message repeats what the lead already says ("The photograph was rejected: No fundus visible: ...").
  let detail = message?.trim().replace(/^the photograph was rejected:\s*/i, '');
  if (reason === 'NO_FUNDUS') detail = detail?.replace(/^no fundus visible:\s*/i, '');
  if (!lead) return detail || 'The photograph could not be uploaded.';
  // lower-case the API's first letter after the colon: "...photograph: the bright region is too small."
  return detail ? `${lead}: ${detail.charAt(0).toLowerCase()}${detail.slice(1)}` : `${lead}.`;
}
