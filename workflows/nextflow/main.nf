/*
 * caduceus scatter/gather for Nextflow (DSL2).
 *
 * Splits `caduceus embed` and `caduceus score-variants` into N tasks with `--shard I/N`
 * (one GPU each when params.caduceus_device is 'cuda'), then gathers them: `caduceus merge`
 * joins the embed shards into the file an unsharded run writes, and the score shards in
 * shard order (the unsharded run's records) into a bgzipped VCF with a .tbi index.
 *
 * As a module:
 *     include { CADUCEUS_SCATTER_GATHER } from './workflows/nextflow/main.nf'
 *     CADUCEUS_SCATTER_GATHER(params.fasta, params.regions, params.vcf, 8)
 * On its own (inputs default to the example data; run from the repository root):
 *     nextflow run workflows/nextflow/main.nf --shards 4 --caduceus_device cuda
 *
 * GPUs. Each shard task asks for one accelerator when params.caduceus_device starts with
 * 'cuda'; the `accelerator` directive is read by the cloud and Kubernetes executors. On SLURM
 * ask for the GPU with clusterOptions, e.g. in nextflow.config:
 *     process { withLabel: 'caduceus_gpu' { clusterOptions = '--gpus=1' } }
 * On one machine with a shared GPU, the local executor runs as many shard tasks at once as it
 * has CPUs, all on the same GPU: cap them with maxForks, e.g.
 *     process { withLabel: 'caduceus_gpu' { maxForks = 1 } }    // or the number of GPUs
 *
 * Extra options go through task.ext.args, e.g.
 *     process { withName: 'CADUCEUS_EMBED' { ext.args = '--pool mean --bin 128' } }
 *
 * Every `caduceus` command below is run by tests/test_workflows.py on example data, so the
 * templates cannot drift from the command line.
 */

nextflow.enable.dsl = 2

params.fasta = 'examples/example.fa'
params.regions = 'examples/genes.bed'   // '' embeds every contig
params.vcf = 'examples/example.vcf'     // '' skips variant scoring
params.shards = 4
params.outdir = 'results'
params.caduceus_model = ''              // '' = the shipped default model; else a checkpoint folder or hub id
params.caduceus_device = ''             // '' lets caduceus choose; 'cpu'; 'cuda' or 'cuda:N' (one GPU per task)
params.caduceus_gpu_type = ''           // accelerator type for the executor, e.g. 'nvidia-tesla-a100'

def usesGpu() {
    params.caduceus_device.toString().startsWith('cuda')
}

// Options every model-running task shares: no --model means the shipped default model.
def modelOptions() {
    [
        params.caduceus_model ? "--model '${params.caduceus_model}'" : '',
        params.caduceus_device ? "--device ${params.caduceus_device}" : '',
    ].findAll().join(' ')
}

process CADUCEUS_EMBED {
    tag "shard ${shard}/${n_shards}"
    label 'caduceus_gpu'
    cpus 4
    accelerator(usesGpu() ? 1 : 0, type: params.caduceus_gpu_type ?: null)

    input:
    tuple val(shard), val(n_shards)
    tuple path(fasta), path(fasta_index)
    path regions

    output:
    tuple val(shard), path("embeddings.${shard}-of-${n_shards}.h5"), emit: h5

    script:
    def args = task.ext.args ?: ''
    def regions_option = regions ? "--regions ${regions}" : ''
    """
    caduceus embed ${fasta} ${regions_option} --shard ${shard}/${n_shards} --threads ${task.cpus} \\
        ${modelOptions()} ${args} -o embeddings.${shard}-of-${n_shards}.h5
    """
}

process CADUCEUS_MERGE {
    publishDir params.outdir, mode: 'copy'

    input:
    path shards

    output:
    path 'embeddings.h5', emit: h5

    script:
    """
    caduceus merge ${shards} -o embeddings.h5
    """
}

process CADUCEUS_SCORE {
    tag "shard ${shard}/${n_shards}"
    label 'caduceus_gpu'
    cpus 4
    accelerator(usesGpu() ? 1 : 0, type: params.caduceus_gpu_type ?: null)

    input:
    tuple val(shard), val(n_shards)
    tuple path(fasta), path(fasta_index)
    path vcf

    output:
    tuple val(shard), path("scored.${shard}-of-${n_shards}.vcf.gz"), emit: vcf

    script:
    def args = task.ext.args ?: ''
    """
    caduceus score-variants ${vcf} --fasta ${fasta} --shard ${shard}/${n_shards} --threads ${task.cpus} \\
        ${modelOptions()} ${args} -O z -o scored.${shard}-of-${n_shards}.vcf.gz
    """
}

process CADUCEUS_CONCAT_VCF {
    publishDir params.outdir, mode: 'copy'

    input:
    path shards

    output:
    tuple path('scored.vcf.gz'), path('scored.vcf.gz.tbi'), emit: vcf

    script:
    // caduceus merge puts the shards in --shard order itself, so collect() order does not matter.
    """
    caduceus merge -o scored.vcf.gz ${shards}
    """
}

workflow CADUCEUS_SCATTER_GATHER {
    take:
    fasta       // reference FASTA path (its .fai/.gzi are staged along when present)
    regions     // BED path, or '' for every contig
    vcf         // VCF path, or '' to skip scoring
    n_shards    // N: tasks per command

    main:
    def indexes = ['.fai', '.gzi'].collect { file("${fasta}${it}") }.findAll { it.exists() }
    reference = Channel.value(tuple(file(fasta, checkIfExists: true), indexes))
    shards = Channel.of(1..n_shards).map { shard -> tuple(shard, n_shards) }

    CADUCEUS_EMBED(shards, reference, regions ? file(regions, checkIfExists: true) : [])
    CADUCEUS_MERGE(CADUCEUS_EMBED.out.h5.map { shard, h5 -> h5 }.collect())
    scored = Channel.empty()
    if (vcf) {
        CADUCEUS_SCORE(shards, reference, file(vcf, checkIfExists: true))
        CADUCEUS_CONCAT_VCF(CADUCEUS_SCORE.out.vcf.map { shard, part -> part }.collect())
        scored = CADUCEUS_CONCAT_VCF.out.vcf
    }

    emit:
    embeddings = CADUCEUS_MERGE.out.h5
    scored = scored
}

workflow {
    CADUCEUS_SCATTER_GATHER(params.fasta, params.regions, params.vcf, params.shards as int)
}
