"""Tutorial: 多进程版文件复制器 (a multi-process folder copier with a progress line).

Copies a folder's files with a forklift.Pool of 3 and reports progress as each
copy finishes. The tutorial needed a Manager().Queue() for the workers to report
finished files; with forklift the results of ``imap_unordered`` arrive as the
copies finish, which is that report. (``Pool(..., progress=True)`` would draw
a bar on stderr instead.) Run alone, it makes a temporary source folder of 12
files (one in a subfolder), copies it, checks the copy and removes both.

forklift plans a ``forklift copy`` command (copy many files in parallel,
resumable); it is not built yet.
"""

# Fixes to the tutorial's code:
# - time.sleep(random.random()) after every 1 KiB read made the copy artificially
#   slow (it was there to make the progress visible): gone;
# - os.listdir() also lists folders, and open() on a folder raises: the tree is
#   walked and every regular file copied, subfolders included;
# - a copy that failed never reported, so the progress loop waited on
#   queue.get() forever: a failure now raises in the main process, with its file;
# - files were not closed if a read or write failed: with blocks; each copy is
#   written to "<name>.part" and renamed when complete, so an interrupted run
#   never leaves a truncated file under its final name;
# - a bare "except: pass" around os.mkdir hid every error, not only "exists";
# - input() for the folder name: the folder is an optional argument instead.

import os
import sys
import tempfile

import forklift

CHUNK = 64 * 1024


def copy_file(rel_path: str, source_folder: str, dest_folder: str) -> str:
    """Copy one file, by chunks, to the same relative path under dest_folder."""
    src = os.path.join(source_folder, rel_path)
    dst = os.path.join(dest_folder, rel_path)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(src, "rb") as f_read, open(dst + ".part", "wb") as f_write:
        while content := f_read.read(CHUNK):
            f_write.write(content)
    os.replace(dst + ".part", dst)
    return rel_path


def list_files(folder: str) -> list[str]:
    """Every regular file under ``folder``, as a path relative to it, sorted."""
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder)
        for name in names
    )


def copy_folder(source_folder: str, dest_folder: str) -> list[str]:
    file_names = list_files(source_folder)
    os.makedirs(dest_folder, exist_ok=True)
    with forklift.Pool(3) as pool:
        jobs = pool.imap_unordered(
            lambda name: copy_file(name, source_folder, dest_folder), file_names, chunksize=1
        )
        for done, file_name in enumerate(jobs, 1):
            print(f"{done * 100 / len(file_names):6.2f}% ({file_name})")
    return file_names


def make_source(folder: str) -> None:
    os.makedirs(os.path.join(folder, "sub"))
    for i in range(12):
        name = os.path.join("sub", "file_11.bin") if i == 11 else f"file_{i:02d}.bin"
        with open(os.path.join(folder, name), "wb") as f:
            f.write(bytes([i]) * (1000 * (i + 1)) + os.urandom(100))


def same_bytes(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if len(sys.argv) > 1:
            source = os.path.abspath(sys.argv[1])
        else:
            source = os.path.join(tmp, "source")
            make_source(source)
        dest = os.path.join(tmp, os.path.basename(source) + "-copy")
        names = copy_folder(source, dest)
        identical = all(same_bytes(os.path.join(source, n), os.path.join(dest, n)) for n in names)
        print(f"copied {len(names)} files, all identical: {identical}")
        print(f"no partial files left: {not any(n.endswith('.part') for n in list_files(dest))}")


if __name__ == "__main__":
    main()
