/* replay.h: the main of a fuzz target built without libFuzzer (compilers
 * that lack it): run LLVMFuzzerTestOneInput on each file named, and on each
 * file in each directory named. Included at the end of a target, inside
 * #ifdef GOCTX_FUZZ_STANDALONE, after defining GOCTX_FUZZ_NAME. */
#ifndef GOCTX_FUZZ_REPLAY_H
#define GOCTX_FUZZ_REPLAY_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return 1;
	}
	static uint8_t buf[1 << 16];
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	return 0;
}

int main(int argc, char **argv)
{
	int runs = 0, bad = 0;
	for (int a = 1; a < argc; a++) {
		struct stat st;
		if (stat(argv[a], &st) != 0) {
			perror(argv[a]);
			bad++;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			bad += run_file(argv[a]);
			runs++;
			continue;
		}
		DIR *d = opendir(argv[a]);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name);
			bad += run_file(path);
			runs++;
		}
		if (d)
			closedir(d);
	}
	printf("%s (replay): %d inputs, %d unreadable\n", GOCTX_FUZZ_NAME, runs, bad);
	return bad ? 1 : 0;
}

#endif
