// A stored photograph for <img>: fetched from the API's GET /photographs/:id as the signed-in user.
import type { NextRequest } from 'next/server';
import { isPhotographSize } from '../../../lib/photograph-paths';
import { proxyApiImage } from '../../../lib/photographs';

export const dynamic = 'force-dynamic';

export async function GET(request: NextRequest, { params }: { params: Promise<{ id: string }> }) {
  const { id } = await params;
  const size = request.nextUrl.searchParams.get('size') ?? 'full';
  if (!isPhotographSize(size)) return Response.json({ code: 'BAD_USER_INPUT', message: 'size must be full, thumbnail or crop' }, { status: 400 });
  return proxyApiImage(`photographs/${encodeURIComponent(id)}?size=${size}`);
}
