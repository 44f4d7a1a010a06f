// The uploaded photograph's model crop for <img>: fetched from the API's GET /uploads/:token/crop as the
// signed-in user (the API answers the uploader only).
import { proxyApiImage } from '../../../../../lib/photographs';

export const dynamic = 'force-dynamic';

export async function GET(_request: Request, { params }: { params: Promise<{ token: string }> }) {
  const { token } = await params;
  return proxyApiImage(`uploads/${encodeURIComponent(token)}/crop`);
}
