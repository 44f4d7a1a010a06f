// Where the browser loads photographs from: this web server's own routes (app/photographs, app/search/upload),
// which fetch them from the API as the signed-in user. Pure, so client components may use it too.
export const PHOTOGRAPH_SIZES = ['full', 'thumbnail', 'crop'] as const;
export type PhotographSize = (typeof PHOTOGRAPH_SIZES)[number];

/** A stored photograph: `crop` is the 512 px square the model saw, the frame its heat map covers. */
export const photographPath = (imageId: string, size: PhotographSize) => `/photographs/${encodeURIComponent(imageId)}?size=${size}`;

/** An upload's model crop (the square its heat map covers); the API serves it to its uploader only. */
export const uploadCropPath = (uploadToken: string) => `/search/upload/${encodeURIComponent(uploadToken)}/crop`;

export function isPhotographSize(value: string | null): value is PhotographSize {
  return value !== null && (PHOTOGRAPH_SIZES as readonly string[]).includes(value);
}
