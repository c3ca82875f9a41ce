/*
 * A one-line progress bar on stderr for long loads: percentage, rate and estimated time left.
 * It draws only when stderr is a terminal, so that logs and pipes stay free of control
 * characters.
 */
#include <stdio.h>
#include <unistd.h>

#include "cli.h"

#define BAR_WIDTH 30

void progress_start(progress *p, uint64_t total)
{
	p->enabled = isatty(STDERR_FILENO);
	p->total = total;
	p->start = cli_now();
	p->shown = 0;
}

void progress_update(progress *p, uint64_t done)
{
	double now, elapsed, rate, frac;
	char bar[BAR_WIDTH + 1];
	int fill;

	if (!p->enabled || p->total == 0)
		return;
	now = cli_now();
	if (done < p->total && now - p->shown < 0.1)
		return;
	p->shown = now;
	elapsed = now - p->start;
	rate = elapsed > 0 ? (double)done / elapsed : 0;
	frac = (double)done / (double)p->total;
	fill = (int)(frac * BAR_WIDTH);
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	fprintf(stderr, "\r[%s] %5.1f%%  %.0f vectors/s  ETA ", bar, 100 * frac, rate);
	if (rate > 0)
		fprintf(stderr, "%.0f s   ", (double)(p->total - done) / rate);
	else
		fputs("?   ", stderr);
	fflush(stderr);
}

void progress_end(progress *p)
{
	if (p->enabled && p->shown > 0) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
}
