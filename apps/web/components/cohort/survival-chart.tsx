'use client';
// Kaplan-Meier curves: a step line per stratum from S(0) = 1, its log-log 95% band as a stepped area between
// lower and upper, and a "+" at each censoring time. Only published steps exist here (the API coarsens and
// truncates them under disclosure control), so nothing is interpolated.
import { Area, CartesianGrid, ComposedChart, Legend, Line, ResponsiveContainer, Scatter, Tooltip, XAxis, YAxis } from 'recharts';
import type { SurvivalCurve } from '../../lib/cohort-statistics';

export const STRATUM_COLOURS = ['#1f5fa8', '#c2410c', '#15803d', '#7e22ce', '#b45309', '#0f766e'];

interface Point {
  time: number;
  survival: number;
  band: [number, number];
}

function curvePoints(curve: SurvivalCurve, end: number): Point[] {
  const points: Point[] = [{ time: 0, survival: 1, band: [1, 1] }];
  for (const step of curve.steps) {
    points.push({ time: step.time, survival: step.survival, band: [step.lower ?? step.survival, step.upper ?? step.survival] });
  }
  const last = points[points.length - 1]!;
  if (end > last.time) points.push({ ...last, time: end });
  return points;
}

/** The survival at time t of a step function: the last step at or before t. */
function survivalAt(points: Point[], time: number): number {
  let survival = 1;
  for (const point of points) if (point.time <= time) survival = point.survival;
  return survival;
}

export function curveEnd(curve: SurvivalCurve): number {
  const times = [...curve.steps.map((step) => step.time), ...curve.censorTimes];
  if (curve.truncatedAt !== null) return Math.max(curve.truncatedAt, ...times, 0);
  const atRisk = curve.numbersAtRisk.filter((count) => /^\d+$/.test(count.atRisk)).map((count) => count.time);
  return Math.max(...times, ...atRisk, 0);
}

export function SurvivalChart({ curves, labels, eventLabel }: { curves: SurvivalCurve[]; labels: string[]; eventLabel: string }) {
  const maxTime = Math.max(1, ...curves.map(curveEnd));
  return (
    <div className="chart km-chart" role="group" aria-label={`Kaplan-Meier curves of time to ${eventLabel}: ${labels.join(', ')}`}>
      <ResponsiveContainer width="100%" height={380}>
        <ComposedChart margin={{ top: 8, right: 24, bottom: 24, left: 8 }}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis
            type="number"
            dataKey="time"
            domain={[0, Math.ceil(maxTime)]}
            allowDuplicatedCategory={false}
            tickCount={Math.ceil(maxTime) + 1}
            label={{ value: 'Years since first eligible visit', position: 'insideBottom', offset: -12 }}
          />
          <YAxis type="number" domain={[0, 1]} ticks={[0, 0.2, 0.4, 0.6, 0.8, 1]} tickFormatter={(value: number) => value.toFixed(1)} label={{ value: 'Without event', angle: -90, position: 'insideLeft' }} />
          <Tooltip formatter={(value) => (Array.isArray(value) ? value.join(' – ') : String(value))} />
          <Legend verticalAlign="top" />
          {curves.map((curve, index) => {
            const colour = STRATUM_COLOURS[index % STRATUM_COLOURS.length];
            const points = curvePoints(curve, curveEnd(curve));
            const censors = curve.censorTimes.map((time) => ({ time, survival: survivalAt(points, time) }));
            return [
              <Area
                key={`${curve.stratum}-band`}
                data={points}
                dataKey="band"
                type="stepAfter"
                stroke="none"
                fill={colour}
                fillOpacity={0.15}
                legendType="none"
                name={`${labels[index]} 95% CI`}
                isAnimationActive={false}
              />,
              <Line
                key={`${curve.stratum}-line`}
                data={points}
                dataKey="survival"
                type="stepAfter"
                stroke={colour}
                strokeWidth={2}
                dot={false}
                name={labels[index]}
                isAnimationActive={false}
              />,
              <Scatter
                key={`${curve.stratum}-censor`}
                data={censors}
                dataKey="survival"
                fill={colour}
                shape="cross"
                legendType="none"
                name={`${labels[index]} censored`}
                isAnimationActive={false}
              />,
            ];
          })}
        </ComposedChart>
      </ResponsiveContainer>
    </div>
  );
}
