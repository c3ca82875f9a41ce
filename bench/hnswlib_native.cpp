/*
 * hnswlib-native: the HNSW benchmark protocol of omendb-bench-hnsw for hnswlib compiled here
 * with -O3 -march=native (on an AVX-512 machine hnswlib's headers then select their AVX-512
 * distance kernels), from the headers of Debian's libhnswlib-dev (the same hnswlib 0.6.2 as
 * python3-hnswlib, which Debian builds for baseline x86-64, i.e. SSE only). It is the fair
 * peer for a library that uses AVX-512; bench/run.sh builds it when the headers are present
 * (python3 bench/data.py hnswlib-headers data). It mirrors what the Python bindings do:
 * add_items adds the first row alone and the rest from T threads taking rows in turn, and
 * knn_query spreads queries over T threads the same way (one thread when there are at most
 * 4 T queries). cosine: vectors and queries normalised, inner-product space (as hnswlib's
 * 'cosine').
 *
 * Usage: hnswlib-native --base BASE.fvecs --query QUERY.fvecs --metric l2|cosine --gt GT.ivecs
 *            --index-file PATH [--n N] [--nq NQ] [--m 16] [--efc 200] [--threads T]
 *            [--efs 10,16,32,64,128,256,512] [--k 10] [--reps 3] [--min-time S] [--single 0|1]
 *            [--exclude-self] [--reuse] [--json OUT]
 */
#include <hnswlib/hnswlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <sys/stat.h>
#include <thread>
#include <vector>

namespace
{

struct Args {
	std::string base, query, metric, gt, index_file, json;
	size_t n = 0, nq = 0, k = 10, reps = 3, m = 16, efc = 200;
	double min_time = 0;
	int threads = 1, single = 1;
	bool exclude_self = false, reuse = false;
	std::vector<size_t> efs{10, 16, 32, 64, 128, 256, 512};
};

[[noreturn]] void die(const std::string &msg)
{
	std::fprintf(stderr, "hnswlib-native: %s\n", msg.c_str());
	std::exit(2);
}

[[noreturn]] void usage()
{
	die("usage: hnswlib-native --base BASE.fvecs --query QUERY.fvecs --metric l2|cosine --gt "
	    "GT.ivecs --index-file PATH [--n N] [--nq NQ] [--m 16] [--efc 200] [--threads T] "
	    "[--efs "
	    "10,16,...] [--k 10] [--reps 3] [--min-time S] [--single 0|1] [--exclude-self] "
	    "[--reuse] [--json OUT]");
}

double now()
{
	using namespace std::chrono;
	return duration<double>(steady_clock::now().time_since_epoch()).count();
}

Args parse(int argc, char **argv)
{
	Args a;
	for (int i = 1; i < argc; i++) {
		std::string o = argv[i];
		if (o == "--exclude-self") {
			a.exclude_self = true;
			continue;
		}
		if (o == "--reuse") {
			a.reuse = true;
			continue;
		}
		if (i + 1 >= argc)
			usage();
		std::string v = argv[++i];
		if (o == "--base")
			a.base = v;
		else if (o == "--query")
			a.query = v;
		else if (o == "--metric")
			a.metric = v;
		else if (o == "--gt")
			a.gt = v;
		else if (o == "--index-file")
			a.index_file = v;
		else if (o == "--json")
			a.json = v;
		else if (o == "--n")
			a.n = std::stoull(v);
		else if (o == "--nq")
			a.nq = std::stoull(v);
		else if (o == "--k")
			a.k = std::stoull(v);
		else if (o == "--reps")
			a.reps = std::stoull(v);
		else if (o == "--m")
			a.m = std::stoull(v);
		else if (o == "--efc")
			a.efc = std::stoull(v);
		else if (o == "--threads")
			a.threads = std::stoi(v);
		else if (o == "--min-time")
			a.min_time = std::stod(v);
		else if (o == "--single")
			a.single = std::stoi(v);
		else if (o == "--efs") {
			a.efs.clear();
			size_t p = 0;
			while (p < v.size()) {
				size_t c = v.find(',', p);
				a.efs.push_back(std::stoull(v.substr(p, c - p)));
				p = c == std::string::npos ? v.size() : c + 1;
			}
		} else
			usage();
	}
	if (a.base.empty() || a.gt.empty() || a.index_file.empty() ||
	    (a.metric != "l2" && a.metric != "cosine") || (a.query.empty() && !a.exclude_self) ||
	    a.threads < 1 || a.k == 0 || a.reps == 0 || a.efs.empty())
		usage();
	return a;
}

std::vector<char> read_all(const std::string &path)
{
	std::ifstream f(path, std::ios::binary);
	if (!f)
		die(path + ": cannot open");
	return std::vector<char>((std::istreambuf_iterator<char>(f)),
	                         std::istreambuf_iterator<char>());
}

/* First limit rows (0 = all) of an .fvecs or .ivecs file: rows x cols 32-bit values. */
template <typename T>
std::vector<T> read_vecs(const std::string &path, size_t limit, size_t &rows, size_t &cols)
{
	std::vector<char> raw = read_all(path);
	int32_t d;
	if (raw.size() < 4)
		die(path + ": too short");
	std::memcpy(&d, raw.data(), 4);
	if (d <= 0 || raw.size() % (4 + 4 * (size_t)d))
		die(path + ": malformed");
	cols = (size_t)d;
	rows = raw.size() / (4 + 4 * cols);
	if (limit && limit < rows)
		rows = limit;
	std::vector<T> out(rows * cols);
	for (size_t i = 0; i < rows; i++)
		std::memcpy(&out[i * cols], raw.data() + i * (4 + 4 * cols) + 4, 4 * cols);
	return out;
}

void normalize(std::vector<float> &x, size_t dim)
{
	for (size_t i = 0; i < x.size() / dim; i++) {
		double s = 0;
		for (size_t j = 0; j < dim; j++)
			s += (double)x[i * dim + j] * x[i * dim + j];
		s = 1.0 / std::sqrt(s);
		for (size_t j = 0; j < dim; j++)
			x[i * dim + j] = (float)(x[i * dim + j] * s);
	}
}

long rss_anon_kb()
{
	std::ifstream f("/proc/self/status");
	std::string line;
	while (std::getline(f, line))
		if (line.rfind("RssAnon:", 0) == 0)
			return std::atol(line.c_str() + 8);
	return -1;
}

/* Runs fn(i) for i in [0, n) on nthreads threads taking indices in turn (hnswlib's ParallelFor
 * in its Python bindings). */
template <typename F> void parallel_for(size_t n, int nthreads, F fn)
{
	if (nthreads <= 1) {
		for (size_t i = 0; i < n; i++)
			fn(i);
		return;
	}
	std::atomic<size_t> next(0);
	std::vector<std::thread> pool;
	for (int t = 0; t < nthreads; t++)
		pool.emplace_back([&] {
			for (size_t i; (i = next.fetch_add(1)) < n;)
				fn(i);
		});
	for (auto &th : pool)
		th.join();
}

double recall(const std::vector<uint64_t> &res, size_t kres, const std::vector<int32_t> &gt,
              size_t kgt, size_t nq, size_t k, bool exclude_self)
{
	size_t hits = 0;
	for (size_t q = 0; q < nq; q++) {
		std::set<uint64_t> g;
		for (size_t j = 0; j < k; j++)
			g.insert((uint64_t)gt[q * kgt + j]);
		size_t used = 0;
		for (size_t i = 0; i < kres && used < k; i++) {
			uint64_t id = res[q * kres + i];
			if (exclude_self && id == q)
				continue;
			used++;
			hits += g.count(id);
		}
	}
	return (double)hits / (double)(nq * k);
}

double median(std::vector<double> v)
{
	std::sort(v.begin(), v.end());
	size_t n = v.size();
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

} // namespace

int main(int argc, char **argv)
{
	Args a = parse(argc, argv);
	size_t n, dim, nq, qdim, gt_rows, gt_k;
	std::vector<float> x = read_vecs<float>(a.base, a.n, n, dim), q;
	if (a.exclude_self) {
		nq = a.nq && a.nq < n ? a.nq : n;
		q.assign(x.begin(), x.begin() + (long)(nq * dim));
	} else {
		q = read_vecs<float>(a.query, a.nq, nq, qdim);
		if (qdim != dim)
			die(a.query + ": dimension differs from the base");
	}
	std::vector<int32_t> gt = read_vecs<int32_t>(a.gt, 0, gt_rows, gt_k);
	if (gt_rows < nq || gt_k < a.k)
		die(a.gt + ": too few rows or ids");
	size_t kres = a.k + (a.exclude_self ? 1 : 0);
	bool cosine = a.metric == "cosine";
	if (cosine) {
		normalize(x, dim);
		normalize(q, dim);
	}
	hnswlib::L2Space l2(dim);
	hnswlib::InnerProductSpace ip(dim);
	hnswlib::SpaceInterface<float> *space =
	    cosine ? (hnswlib::SpaceInterface<float> *)&ip : &l2;
	hnswlib::HierarchicalNSW<float> *index;
	double build_s = -1, save_s = -1, open_s = -1, rss_growth = 0;
	double rss_peak_growth = 0;
	if (!a.reuse) {
		long rss0 = rss_anon_kb(), peak = rss0;
		std::atomic<bool> stop(false);
		std::thread sampler([&] { /* RssAnon every 5 ms, for its peak */
			                  while (!stop.load()) {
				                  peak = std::max(peak, rss_anon_kb());
				                  std::this_thread::sleep_for(
				                      std::chrono::milliseconds(5));
			                  }
		});
		double t0 = now();
		index = new hnswlib::HierarchicalNSW<float>(space, n, a.m, a.efc);
		index->addPoint(&x[0], 0);
		parallel_for(n - 1, a.threads,
		             [&](size_t i) { index->addPoint(&x[(i + 1) * dim], i + 1); });
		build_s = now() - t0;
		stop = true;
		sampler.join();
		long rss1 = rss_anon_kb();
		rss_growth = 1024.0 * (double)(rss1 - rss0) / (double)n;
		rss_peak_growth = 1024.0 * (double)(std::max(peak, rss1) - rss0) / (double)n;
		std::fprintf(stderr, "hnswlib-native: index built in %.2f s, %d threads\n", build_s,
		             a.threads);
		t0 = now();
		index->saveIndex(a.index_file);
		save_s = now() - t0;
	} else {
		double t0 = now();
		index = new hnswlib::HierarchicalNSW<float>(space, a.index_file, false, n);
		open_s = now() - t0;
	}
	struct stat st;
	if (stat(a.index_file.c_str(), &st) != 0)
		die(a.index_file + ": missing");
	std::vector<float>().swap(x);

	std::vector<uint64_t> ids(nq * kres, UINT64_MAX);
	auto search_all = [&](int threads) {
		int t = nq <= (size_t)threads * 4 ? 1 : threads;
		parallel_for(nq, t, [&](size_t i) {
			auto res = index->searchKnn(&q[i * dim], kres);
			for (size_t j = res.size(); j-- > 0; res.pop())
				ids[i * kres + j] = res.top().second;
		});
	};
	index->setEf(a.efs[0]);
	double t0 = now();
	search_all(a.threads);
	double warm_s = now() - t0;

	FILE *out = a.json.empty() ? stdout : std::fopen(a.json.c_str(), "w");
	if (!out)
		die(a.json + ": cannot write");
	std::fprintf(out, "{\"bench\": \"hnsw\", \"system\": \"hnswlib-native\", \"version\": "
	                  "\"0.6.2 headers, g++ -O3 -march=native\",\n");
	std::fprintf(out,
	             " \"base\": \"%s\", \"n\": %zu, \"dim\": %zu, \"metric\": \"%s\", \"nq\": "
	             "%zu, \"k\": %zu, \"exclude_self\": %s, \"m\": %zu, \"efc\": %zu, "
	             "\"threads\": %d, \"reps\": %zu, \"reused\": %s,\n",
	             a.base.c_str(), n, dim, a.metric.c_str(), nq, a.k,
	             a.exclude_self ? "true" : "false", a.m, a.efc, a.threads, a.reps,
	             a.reuse ? "true" : "false");
	auto num = [&](const char *key, double v) {
		if (v < 0)
			std::fprintf(out, " \"%s\": null,", key);
		else
			std::fprintf(out, " \"%s\": %.6f,", key, v);
	};
	num("build_s", build_s);
	num("save_s", save_s);
	num("open_s", open_s);
	std::fprintf(out,
	             " \"warmup_s\": %.6f,\n \"bytes\": {\"file_per_vector\": %.3f, "
	             "\"file_bytes\": %lld",
	             warm_s, (double)st.st_size / (double)n, (long long)st.st_size);
	if (!a.reuse)
		std::fprintf(out,
		             ", \"rss_anon_growth_build_per_vector\": %.3f, "
		             "\"rss_anon_peak_growth_build_per_vector\": %.3f",
		             rss_growth, rss_peak_growth);
	std::fprintf(out, "},\n \"sweep\": [\n");
	for (size_t e = 0; e < a.efs.size(); e++) {
		size_t ef = a.efs[e];
		index->setEf(ef);
		std::vector<double> times;
		double spent = 0;
		while (times.size() < a.reps || (spent < a.min_time && times.size() < 200)) {
			double s = now();
			search_all(a.threads);
			times.push_back(now() - s);
			spent += times.back();
		}
		double rec = recall(ids, kres, gt, gt_k, nq, a.k, a.exclude_self);
		double med = median(times);
		std::fprintf(out, "  {\"ef\": %zu, \"recall\": %.6f, \"batch_s\": [", ef, rec);
		for (size_t r = 0; r < times.size(); r++)
			std::fprintf(out, "%s%.9g", r ? ", " : "", times[r]);
		std::fprintf(out, "], \"batch_median_s\": %.9g, \"batch_qps\": %.3f", med,
		             (double)nq / med);
		std::fprintf(stderr,
		             "hnswlib-native: ef %4zu: recall@%zu %.4f, batch %.0f q/s (%d thr)",
		             ef, a.k, rec, (double)nq / med, a.threads);
		if (a.single) {
			std::vector<double> lat(nq);
			double total = 0;
			std::fill(ids.begin(), ids.end(), UINT64_MAX);
			for (size_t i = 0; i < nq; i++) {
				double s = now();
				auto res = index->searchKnn(&q[i * dim], kres);
				for (size_t j = res.size(); j-- > 0; res.pop())
					ids[i * kres + j] = res.top().second;
				lat[i] = now() - s;
				total += lat[i];
			}
			std::vector<double> sorted = lat;
			std::sort(sorted.begin(), sorted.end());
			double p50 = 1e3 * sorted[std::min(nq - 1, (size_t)(0.5 * (double)nq))];
			double p99 = 1e3 * sorted[std::min(nq - 1, (size_t)(0.99 * (double)nq))];
			double srec = recall(ids, kres, gt, gt_k, nq, a.k, a.exclude_self);
			std::fprintf(out,
			             ", \"single_total_s\": %.9g, \"single_qps\": %.3f, "
			             "\"latency_p50_ms\": %.6f, \"latency_p99_ms\": %.6f, "
			             "\"single_recall\": %.6f",
			             total, (double)nq / total, p50, p99, srec);
			std::fprintf(stderr, ", single %.0f q/s, p50 %.3f ms, p99 %.3f ms",
			             (double)nq / total, p50, p99);
		}
		std::fprintf(stderr, "\n");
		std::fprintf(out, "}%s\n", e + 1 < a.efs.size() ? "," : "");
	}
	std::fprintf(out, " ]}\n");
	if (out != stdout)
		std::fclose(out);
	delete index;
	return 0;
}
